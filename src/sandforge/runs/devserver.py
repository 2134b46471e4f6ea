"""Bringing a project's dev server up: in a fresh sandbox from stored files, or a stopped one."""

from __future__ import annotations

from ..config import Settings
from ..sandbox import Sandbox, SandboxError, SandboxProvider, SandboxSpec, SandboxState
from ..sandbox.http import Readiness, wait_until_ready
from ..templates import ProjectTemplate
from ..templates.cache import dependency_path

DEV_PROCESS = "dev"
LOG_TAIL_LINES = 20


class DevServerError(SandboxError):
    code = "dev_server_failed"


def log_tail(log: str, lines: int = LOG_TAIL_LINES) -> str:
    return "\n".join(log.strip().splitlines()[-lines:])


def readiness_error(readiness: Readiness, timeout: float) -> DevServerError:
    what = "exited" if readiness.crashed else f"did not answer within {timeout:.0f}s"
    return DevServerError(
        f"The dev server {what}. Last lines of its log:\n{log_tail(readiness.log_tail)}"
    )


def project_spec(
    template: ProjectTemplate, settings: Settings, labels: dict[str, str]
) -> SandboxSpec:
    """The spec of a project's sandbox: its labels, and its template's package cache."""
    mounts = {}
    if template.dependency_dir is not None:
        mounts[template.dependency_dir] = str(dependency_path(settings.template_cache, template))
    return SandboxSpec(labels=labels, readonly_mounts=mounts)


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


async def start_dev_server(sandbox: Sandbox, template: ProjectTemplate, timeout: float) -> None:
    """Start (or restart) the template's dev server and wait until it answers."""
    await sandbox.start_process(DEV_PROCESS, template.dev_command)
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


async def ensure_serving(sandbox: Sandbox, template: ProjectTemplate, timeout: float) -> None:
    """Start a stopped sandbox and its dev server, if either is down."""
    if (await sandbox.info()).state != SandboxState.STARTED:
        await sandbox.start()
    if not await dev_server_running(sandbox):
        await start_dev_server(sandbox, template, timeout)
