"""A project's sandbox and its dev server: opened, rebuilt from stored files, started.

The pipeline (in a worker) and the project service (in the server) both bring a
project's preview up through here, so "find the sandbox, else rebuild it from the
stored files, then serve it" is written once.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field

from ..config import Settings
from ..sandbox import (
    Sandbox,
    SandboxError,
    SandboxNotFound,
    SandboxProvider,
    SandboxSpec,
    SandboxState,
)
from ..sandbox.http import Readiness, upstream_client, wait_until_ready
from ..templates import ProjectTemplate
from ..templates.cache import dependency_path

DEV_PROCESS = "dev"
LOG_TAIL_LINES = 20
PREVIEW_PROBE_TIMEOUT_S = 3.0

PreviewState = Literal["booting", "ready", "crashed", "stopped"]


class DevServerError(SandboxError):
    code = "dev_server_failed"


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


def readiness_error(readiness: Readiness, timeout: float) -> DevServerError:
    what = "exited" if readiness.crashed else f"did not answer within {timeout:.0f}s"
    return DevServerError(
        f"The dev server {what}. Last lines of its log:\n{log_tail(readiness.log_tail)}"
    )


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
    """The spec of a project's sandbox: its labels, its template's package cache and the
    project's own resources."""
    mounts = {}
    if template.dependency_dir is not None:
        mounts[template.dependency_dir] = str(dependency_path(settings.template_cache, template))
    return SandboxSpec(
        labels=project_labels(project_id, run_id),
        readonly_mounts=mounts,
        **(resources.spec_fields() if resources is not None else {}),
    )


async def install_dependencies(sandbox: Sandbox, template: ProjectTemplate) -> None:
    """Install the template's packages where no host cache was mounted (remote providers)."""
    if template.dependency_dir is None or template.install_command is None:
        return
    probe = await sandbox.exec(f"test -d {template.dependency_dir}")
    if probe.exit_code == 0:
        return
    result = await sandbox.exec(template.install_command, timeout=600)
    if result.exit_code != 0:
        raise DevServerError(
            f"`{template.install_command}` failed in the sandbox:\n{log_tail(result.stderr)}"
        )


async def start_dev_server(
    sandbox: Sandbox, template: ProjectTemplate, timeout: float, env: dict[str, str] | None = None
) -> None:
    """Start (or restart) the template's dev server and wait until it answers. `env` is the
    app's own environment: it goes to the dev server's processes and nowhere else."""
    await sandbox.start_process(DEV_PROCESS, template.dev_command, env=env)
    readiness = await wait_until_ready(sandbox, template.port, DEV_PROCESS, timeout)
    if not readiness.ready:
        raise readiness_error(readiness, timeout)


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
    await start_dev_server(sandbox, template, timeout, env)
    return await startup_stamp(sandbox, template)


async def confirm_serving(
    sandbox: Sandbox,
    template: ProjectTemplate,
    timeout: float,
    stamp: str | None,
    env: dict[str, str] | None = None,
) -> None:
    """After the final files: the dev server up and answering, restarted where the running one
    is gone or started before a change it cannot pick up by itself (`stamp` from
    `serve_early`; None: it never started)."""
    await install_dependencies(sandbox, template)
    stale = stamp is None or stamp != await startup_stamp(sandbox, template)
    if stale or not await dev_server_running(sandbox):
        await start_dev_server(sandbox, template, timeout, env)
        return
    readiness = await wait_until_ready(sandbox, template.port, DEV_PROCESS, timeout)
    if not readiness.ready:
        raise readiness_error(readiness, timeout)


async def dev_server_running(sandbox: Sandbox) -> bool:
    try:
        return (await sandbox.process_status(DEV_PROCESS)).running
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
    if not await dev_server_running(sandbox):
        await start_dev_server(sandbox, template, timeout, env)


@dataclass(frozen=True)
class PreviewStatus:
    state: PreviewState
    log_tail: str = ""
    exit_code: int | None = None


async def preview_status(sandbox: Sandbox, port: int) -> PreviewStatus:
    """Whether a sandbox's dev server is stopped, booting, ready or crashed, with its log."""
    if (await sandbox.info()).state != SandboxState.STARTED:
        return PreviewStatus("stopped")
    try:
        process = await sandbox.process_status(DEV_PROCESS)
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
