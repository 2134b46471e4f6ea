"""A project's sandbox and its dev server: opened, rebuilt from stored files, started.

The pipeline (in a worker) and the project service (in the server) both bring a
project's preview up through here, so "find the sandbox, else rebuild it from the
stored files, then serve it" is written once.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import posixpath
import shlex
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field

from ..config import Settings
from ..events import ServicePreview
from ..sandbox import (
    Sandbox,
    SandboxError,
    SandboxNotFound,
    SandboxProvider,
    SandboxSpec,
    SandboxState,
)
from ..sandbox.http import Readiness, upstream_client, wait_until_ready
from ..templates import Packages, ProjectTemplate, Service
from ..templates.cache import package_mounts

DEV_PROCESS = "dev"
LOG_TAIL_LINES = 20
PREVIEW_PROBE_TIMEOUT_S = 3.0

PreviewState = Literal["booting", "ready", "crashed", "stopped"]


class DevServerError(SandboxError):
    code = "dev_server_failed"


class ServiceNotFound(SandboxError):
    code = "service_not_found"
    http_status = 404


class NothingToRebuild(SandboxError):
    code = "nothing_to_rebuild"


def project_labels(project_id: str, run_id: str | None = None) -> dict[str, str]:
    """The labels that tie a sandbox to its project (and to the run that created it, which
    deletes it if it fails)."""
    labels = {"sandforge": "1", "project": project_id}
    if run_id is not None:
        labels["run"] = run_id
    return labels


def log_tail(log: str, lines: int = LOG_TAIL_LINES) -> str:
    return "\n".join(log.strip().splitlines()[-lines:])


def readiness_error(readiness: Readiness, timeout: float, service: str = "") -> DevServerError:
    what = "exited" if readiness.crashed else f"did not answer within {timeout:.0f}s"
    server = f"dev server ({service})" if service and service != "web" else "dev server"
    return DevServerError(
        f"The {server} {what}. Last lines of its log:\n{log_tail(readiness.log_tail)}"
    )


def process_name(template: ProjectTemplate, service: Service) -> str:
    """The main service's process keeps the one name single-service projects always had."""
    return DEV_PROCESS if service == template.main else f"{DEV_PROCESS}-{service.name}"


def service_previews(
    template: ProjectTemplate, settings: Settings, project_id: str
) -> list[ServicePreview]:
    """Each service's stable preview URL, `{port}-{project id}`; the main service first."""
    return [
        ServicePreview(
            name=s.name, port=s.port, previewUrl=settings.preview_url(project_id, s.port)
        )
        for s in template.services
    ]


def find_service(template: ProjectTemplate, name: str | None) -> Service:
    """The service called `name` (the main one for None), or ServiceNotFound."""
    if name is None:
        return template.main
    for service in template.services:
        if service.name == name:
            return service
    names = ", ".join(s.name for s in template.services)
    raise ServiceNotFound(f"A {template.name} project has no service {name!r}; it has {names}.")


class SandboxResources(BaseModel):
    """A project's own sandbox settings; what is unset keeps sandforge's default."""

    model_config = ConfigDict(extra="forbid", strict=True)

    cpu: float | None = Field(default=None, ge=0.1, le=64)
    """CPU: 1 is one ordinary process's share against other sandboxes (locally, the cgroup
    weight 100); on Daytona, vCPUs."""
    memoryMb: int | None = Field(default=None, ge=64, le=262_144)
    diskMb: int | None = Field(default=None, ge=64, le=1_048_576)
    egress: bool | None = None
    """Outbound network for the app and its commands (off by default: loopback only)."""

    def spec_fields(self) -> dict[str, Any]:
        fields: dict[str, Any] = {}
        if self.cpu is not None:
            fields["cpu_weight"] = min(max(round(self.cpu * 100), 1), 10_000)
        if self.memoryMb is not None:
            fields["memory_mb"] = self.memoryMb
        if self.diskMb is not None:
            fields["disk_mb"] = self.diskMb
        if self.egress is not None:
            fields["network"] = "egress" if self.egress else "none"
        return fields


def project_spec(
    template: ProjectTemplate,
    settings: Settings,
    project_id: str,
    run_id: str | None = None,
    resources: SandboxResources | None = None,
) -> SandboxSpec:
    """The spec of a project's sandbox: its labels, its template's package caches and env,
    and the project's own resources."""
    return SandboxSpec(
        labels=project_labels(project_id, run_id),
        env=dict(template.env),
        packages=True,
        package_mounts=package_mounts(settings.template_cache, template, settings.rootfs.key),
        stack=template.name,
        **(resources.spec_fields() if resources is not None else {}),
    )


async def install_dependencies(sandbox: Sandbox, template: ProjectTemplate) -> None:
    """Install the template's packages where no host cache was mounted (remote providers),
    and the packages the project added beyond the template's (`npm install x`, and in a local
    sandbox `pip install y`), which a sandbox rebuilt from the stored files lacks."""
    for packages in template.packages:
        probe = await sandbox.exec(f"test -d {packages.directory}")
        if probe.exit_code != 0:
            await _run_install(sandbox, packages.install_command)
        elif packages.manager == "npm" or sandbox.provider == "local":
            await _install_added(sandbox, template, packages)


async def _install_added(sandbox: Sandbox, template: ProjectTemplate, packages: Packages) -> None:
    """Install what the project's manifest lists beyond the template's, through the package
    bridge (from its cache, once fetched): pip's go to the sandbox user's site dir, npm's
    into node_modules (an overlay over the cache)."""
    manifest = packages.lock_files[0]
    try:
        current = await sandbox.read_file(manifest)
    except SandboxError:
        return
    if current == template.files.joinpath(manifest).read_bytes():
        return
    if packages.manager == "pip":
        command = f"python3 -m pip install --quiet -r {shlex.quote(manifest)}"
    else:
        # npm records each install in node_modules/.package-lock.json: newer than the
        # manifest, node_modules already holds what it lists.
        command = (
            f"cd {shlex.quote(posixpath.dirname(manifest) or '.')} && "
            "{ [ node_modules/.package-lock.json -nt package.json ] || "
            "npm install --no-audit --no-fund --loglevel=error; }"
        )
    await _run_install(sandbox, command)


async def _run_install(sandbox: Sandbox, command: str) -> None:
    result = await sandbox.exec(command, timeout=600)
    if result.exit_code != 0:
        raise DevServerError(f"`{command}` failed in the sandbox:\n{log_tail(result.stderr)}")


async def _start_service(
    sandbox: Sandbox,
    template: ProjectTemplate,
    service: Service,
    timeout: float,
    env: dict[str, str] | None,
) -> None:
    name = process_name(template, service)
    # `cd` in the command rather than a cwd: a local sandbox's daemon may not enter the
    # commands' own dirs (it holds no capability over them).
    command = (
        service.command
        if service.cwd == "."
        else f"cd {shlex.quote(service.cwd)} && {service.command}"
    )
    await sandbox.start_process(name, command, env=env)
    readiness = await wait_until_ready(sandbox, service.port, name, timeout)
    if not readiness.ready:
        raise readiness_error(readiness, timeout, service.name)


async def start_dev_server(
    sandbox: Sandbox,
    template: ProjectTemplate,
    timeout: float,
    *,
    only_stopped: bool = False,
    env: dict[str, str] | None = None,
) -> None:
    """Start (or restart) the template's services together and wait until each answers.

    With `only_stopped`, services whose process still runs are left alone. `env` is the
    app's own environment: it goes to the services' processes and nowhere else.
    """
    services = [
        s
        for s in template.services
        if not only_stopped or not await _running(sandbox, process_name(template, s))
    ]
    await asyncio.gather(*(_start_service(sandbox, template, s, timeout, env) for s in services))


async def startup_stamp(sandbox: Sandbox, template: ProjectTemplate) -> str:
    """A digest of the files the dev server reads only when it starts: when it changes, the
    running server is stale and must restart."""
    digest = hashlib.sha256()
    for path in template.startup_files:
        try:
            content = await sandbox.read_file(path)
        except SandboxError:
            content = b"\0missing"
        digest.update(hashlib.sha256(content).digest())
    return digest.hexdigest()


async def serve_early(
    sandbox: Sandbox, template: ProjectTemplate, timeout: float, env: dict[str, str] | None = None
) -> str:
    """Start the dev server on the files as they are (the starter, before the model writes),
    so the preview shows each file as it lands; returns its startup stamp."""
    await install_dependencies(sandbox, template)
    await start_dev_server(sandbox, template, timeout, env=env)
    return await startup_stamp(sandbox, template)


async def confirm_serving(
    sandbox: Sandbox,
    template: ProjectTemplate,
    timeout: float,
    stamp: str | None,
    env: dict[str, str] | None = None,
) -> None:
    """After the final files: every service up and answering, all restarted when they started
    before a change they cannot pick up by themselves (`stamp` from `serve_early`; None: they
    never started), and any that is gone started again."""
    await install_dependencies(sandbox, template)
    if stamp is None or stamp != await startup_stamp(sandbox, template):
        await start_dev_server(sandbox, template, timeout, env=env)
        return
    await start_dev_server(sandbox, template, timeout, only_stopped=True, env=env)
    for service in template.services:
        name = process_name(template, service)
        readiness = await wait_until_ready(sandbox, service.port, name, timeout)
        if not readiness.ready:
            raise readiness_error(readiness, timeout, service.name)


async def _running(sandbox: Sandbox, process: str) -> bool:
    try:
        return (await sandbox.process_status(process)).running
    except SandboxError:
        return False


async def write_files(sandbox: Sandbox, files: dict[str, bytes]) -> None:
    for path, content in files.items():
        await sandbox.write_file(path, content)


async def rebuild(provider: SandboxProvider, spec: SandboxSpec, files: dict[str, bytes]) -> Sandbox:
    """A new sandbox holding `files`; deleted again if writing them fails."""
    sandbox = await provider.create(spec)
    try:
        await write_files(sandbox, files)
    except BaseException:
        await sandbox.delete()
        raise
    return sandbox


async def open_or_rebuild(
    provider: SandboxProvider,
    sandbox_id: str | None,
    spec: SandboxSpec,
    stored_files: Callable[[], Awaitable[dict[str, bytes]]],
) -> tuple[Sandbox, bool]:
    """The project's sandbox if it still exists, else a new one holding its stored files.

    Returns the sandbox and whether it was rebuilt.
    """
    if sandbox_id is not None:
        with contextlib.suppress(SandboxNotFound):
            return await provider.get(sandbox_id), False
    files = await stored_files()
    if not files:
        raise NothingToRebuild("The project has no stored files to rebuild its sandbox from.")
    return await rebuild(provider, spec, files), True


async def ensure_serving(
    sandbox: Sandbox, template: ProjectTemplate, timeout: float, env: dict[str, str] | None = None
) -> None:
    """Start a stopped sandbox and its dev server, if either is down."""
    if (await sandbox.info()).state != SandboxState.STARTED:
        await sandbox.start()
    await install_dependencies(sandbox, template)
    await start_dev_server(sandbox, template, timeout, only_stopped=True, env=env)


@dataclass(frozen=True)
class PreviewStatus:
    state: PreviewState
    log_tail: str = ""
    exit_code: int | None = None


async def preview_status(
    sandbox: Sandbox, port: int, process_label: str = DEV_PROCESS
) -> PreviewStatus:
    """Whether a sandbox's dev server is stopped, booting, ready or crashed, with its log."""
    if (await sandbox.info()).state != SandboxState.STARTED:
        return PreviewStatus("stopped")
    try:
        process = await sandbox.process_status(process_label)
    except SandboxError:
        return PreviewStatus("booting")
    if not process.running:
        return PreviewStatus("crashed", process.log_tail, process.exit_code)
    try:
        async with upstream_client(await sandbox.upstream(port), PREVIEW_PROBE_TIMEOUT_S) as client:
            response = await client.get("/")
        ready = response.status_code < 500
    except (httpx.HTTPError, SandboxError):
        ready = False
    return PreviewStatus("ready" if ready else "booting", process.log_tail)
