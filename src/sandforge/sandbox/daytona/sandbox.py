"""A Daytona sandbox: the Sandbox protocol over one of the SDK's AsyncSandbox objects."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import math
import re
import secrets
import shlex
import time
from dataclasses import dataclass, field
from datetime import datetime

from daytona import (
    AsyncSandbox,
    DaytonaTimeoutError,
    FileUpload,
    SessionExecuteRequest,
)

from ..base import (
    SKIPPED_DIRS,
    ExecResult,
    FileEntry,
    PathEscapeError,
    ProcessStatus,
    SandboxError,
    SandboxInfo,
    SandboxNotFound,
    SandboxSpec,
    SandboxState,
    Upstream,
    normalize_relative,
)
from ..metering import ResourceSample
from ..system import SystemImage
from .errors import daytona_errors

LABEL_CREATE = "sandforge-create"
LABEL_PREVIEW = "sandforge-preview"
LABEL_LANGUAGE = "code-toolbox-language"  # the SDK adds it to every sandbox
INTERNAL_LABELS = frozenset({LABEL_CREATE, LABEL_PREVIEW, LABEL_LANGUAGE})
PREVIEW_TOKEN_HEADER = "x-daytona-preview-token"
SKIP_PREVIEW_WARNING_HEADER = "x-daytona-skip-preview-warning"
"""Without it, Daytona's proxy answers a browser with its own warning page, not the app."""

SESSION_PREFIX = "sandforge-"
LOG_TAIL_CHARS = 8192
# The same listing rules as the local toolbox, so both providers list alike.
LIST_LIMIT = 5000
LIST_CONCURRENCY = 8

LIFECYCLE_TIMEOUT_S = 120.0
INFO_FRESH_S = 2.0
"""How long a fetched sandbox record answers `info()` without asking Daytona again."""
TIMED_OUT_EXIT_CODE = 137  # 128 + SIGKILL, as a shell (and the local provider) reports it

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
_ENV_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
GONE_STATES = frozenset({"destroyed", "destroying"})


@dataclass(frozen=True)
class DaytonaOptions:
    api_key: str
    api_url: str
    target: str | None = None
    image: str | None = None
    snapshot: str | None = None
    project_dir: str = "/home/daytona/project"
    create_timeout_s: float = 120.0
    cleanup_grace_s: float = 30.0
    system: SystemImage = field(default_factory=SystemImage)
    """The Debian packages a project type's image installs, as local sandboxes' image has."""


@dataclass(frozen=True)
class DaytonaPreview:
    """A URL straight to Daytona's preview proxy, and the token it needs (if any)."""

    url: str
    token: str | None


def _state(value: str | None) -> SandboxState:
    if value == "started":
        return SandboxState.STARTED
    if value in ("error", "build_failed"):
        return SandboxState.ERROR
    return SandboxState.STOPPED


def state_value(raw: AsyncSandbox) -> str | None:
    return raw.state.value if raw.state is not None else None


def _timestamp(value: str | None) -> float:
    if not value:
        return time.time()
    try:
        return datetime.fromisoformat(value).timestamp()
    except ValueError:
        return time.time()


def sandbox_info(raw: AsyncSandbox) -> SandboxInfo:
    labels = dict(raw.labels or {})
    # A sandbox sandforge did not make has no token of ours; an unguessable one keeps its
    # preview private instead of open to an empty token.
    token = labels.get(LABEL_PREVIEW) or secrets.token_urlsafe(24)
    return SandboxInfo(
        id=raw.id,
        provider="daytona",
        state=_state(state_value(raw)),
        labels={k: v for k, v in labels.items() if k not in INTERNAL_LABELS},
        public=bool(raw.public),
        created_at=_timestamp(raw.created_at),
        preview_token=token,
    )


def check_env(env: dict[str, str] | None) -> dict[str, str]:
    env = env or {}
    for key in env:
        if not _ENV_KEY.match(key):
            raise SandboxError(f"{key!r} is not a valid environment variable name")
    return env


def _session_id(name: str) -> str:
    if not _NAME.match(name):
        raise SandboxError(
            f"{name!r} is not a valid process name (letters, digits, '-' and '_', up to 64)"
        )
    return SESSION_PREFIX + name


def _capped(text: str, cap: int) -> tuple[str, bool]:
    data = text.encode()
    if len(data) <= cap:
        return text, False
    return data[:cap].decode(errors="ignore"), True


def _stderr_split_script(cmd: str, marker: str) -> str:
    """`cmd` run by sh with stderr kept apart: Daytona's exec merges the two streams.

    stdout streams as usual; stderr goes to a temp file that is printed after `marker`.
    """
    return "; ".join(
        [
            "_sf_err=$(mktemp 2>/dev/null || echo /tmp/.sandforge-stderr-$$)",
            f'sh -c {shlex.quote(cmd)} 2>"$_sf_err"',
            "_sf_code=$?",
            f"printf '%s' {shlex.quote(marker)}",
            'cat "$_sf_err" 2>/dev/null',
            'rm -f "$_sf_err"',
            'exit "$_sf_code"',
        ]
    )


class DaytonaSandbox:
    provider = "daytona"

    def __init__(self, raw: AsyncSandbox, options: DaytonaOptions, spec: SandboxSpec) -> None:
        self._raw = raw
        self._options = options
        self._spec = spec
        self._fresh_until = time.monotonic() + INFO_FRESH_S

    @property
    def id(self) -> str:
        return self._raw.id

    @property
    def project_dir(self) -> str:
        return self._options.project_dir

    def _path(self, path: str) -> str:
        rel = normalize_relative(path)
        return self.project_dir if rel == "." else f"{self.project_dir}/{rel}"

    def _errors(
        self, action: str, path: str | None = None
    ) -> contextlib.AbstractContextManager[None]:
        return daytona_errors(action, self.id, path)

    async def info(self) -> SandboxInfo:
        if time.monotonic() >= self._fresh_until:
            with self._errors("read the sandbox's state"):
                await self._raw.refresh_data()
            self._fresh_until = time.monotonic() + INFO_FRESH_S
        return sandbox_info(self._raw)

    async def resources(self) -> ResourceSample | None:
        """What Daytona allocated (and bills): its vCPUs and GiB of memory."""
        cpus, memory = getattr(self._raw, "cpu", None), getattr(self._raw, "memory", None)
        if cpus is None:
            return None
        return ResourceSample(allocated_cpus=float(cpus), allocated_memory_gb=float(memory or 0))

    # -- commands ---------------------------------------------------------------------------

    async def exec(
        self,
        cmd: str,
        *,
        cwd: str | None = None,
        env: dict[str, str] | None = None,
        timeout: float | None = None,
    ) -> ExecResult:
        directory = self._path(cwd) if cwd else self.project_dir
        extra = check_env(env)
        limit = timeout or self._spec.exec_timeout_s
        marker = f"__sandforge_stderr_{secrets.token_hex(8)}__"
        with self._errors("run a command"):
            try:
                response = await self._raw.process.exec(
                    _stderr_split_script(cmd, marker),
                    cwd=directory,
                    env=extra or None,
                    timeout=max(1, math.ceil(limit)),
                )
            except DaytonaTimeoutError:
                # The daemon killed it (DaytonaProcessExecutionTimeoutError) or never answered.
                return ExecResult(
                    exit_code=TIMED_OUT_EXIT_CODE, stdout="", stderr="", timed_out=True
                )
        output = response.result or ""
        stdout, found, stderr = output.partition(marker)
        if not found:
            if response.exit_code == -1:  # the daemon could not start it (e.g. no such cwd)
                raise SandboxError(f"could not run the command in {directory}: {output.strip()}")
            stdout, stderr = output, ""
        cap = self._spec.output_cap_bytes
        stdout, out_cut = _capped(stdout, cap)
        stderr, err_cut = _capped(stderr, cap)
        return ExecResult(
            exit_code=int(response.exit_code),
            stdout=stdout,
            stderr=stderr,
            truncated=out_cut or err_cut,
        )

    async def start_process(
        self, name: str, cmd: str, *, cwd: str | None = None, env: dict[str, str] | None = None
    ) -> None:
        session = _session_id(name)
        directory = self._path(cwd) if cwd else self.project_dir
        assignments = " ".join(shlex.quote(f"{k}={v}") for k, v in check_env(env).items())
        runner = f"env {assignments} sh -c" if assignments else "sh -c"
        command = f"cd {shlex.quote(directory)} && {runner} {shlex.quote(cmd)}"
        process = self._raw.process
        # One session per process name: deleting it stops the previous run, as local does.
        with contextlib.suppress(SandboxNotFound), self._errors(f"stop process {name!r}"):
            await process.delete_session(session)
        with self._errors(f"start process {name!r}"):
            await process.create_session(session)
            await process.execute_session_command(
                session, SessionExecuteRequest(command=command, run_async=True)
            )

    async def process_status(self, name: str) -> ProcessStatus:
        session_id = _session_id(name)
        process = self._raw.process
        try:
            with self._errors(f"read process {name!r}"):
                session = await process.get_session(session_id)
        except SandboxNotFound as exc:
            raise SandboxError(f"no process named {name!r}") from exc
        if not session.commands:
            raise SandboxError(f"no process named {name!r}")
        command = session.commands[-1]
        with self._errors(f"read the log of process {name!r}"):
            logs = await process.get_session_command_logs(session_id, command.id)
        output = (
            logs.output if logs.output is not None else (logs.stdout or "") + (logs.stderr or "")
        )
        return ProcessStatus(
            name=name,
            running=command.exit_code is None,
            exit_code=command.exit_code,
            log_tail=output[-LOG_TAIL_CHARS:],
        )

    # -- files ------------------------------------------------------------------------------

    async def read_file(self, path: str) -> bytes:
        target = self._path(path)
        if target == self.project_dir:
            raise SandboxError("the project dir itself is not a file")
        with self._errors(f"read {path!r}", path):
            data = await self._raw.fs.download_file(target)
        if len(data) > self._spec.max_file_bytes:
            raise SandboxError(f"{path!r} is over {self._spec.max_file_bytes} bytes")
        return data

    async def write_file(self, path: str, content: bytes) -> None:
        target = self._path(path)
        if target == self.project_dir:
            raise SandboxError("the project dir itself is not a file")
        if len(content) > self._spec.max_file_bytes:
            raise SandboxError(
                f"{len(content)} bytes is over the {self._spec.max_file_bytes}-byte file limit"
            )
        with self._errors(f"write {path!r}", path):
            await self._raw.fs.upload_files([FileUpload(content, target)])

    async def _list_dir(self, rel: str, gate: asyncio.Semaphore) -> list[tuple[str, int, bool]]:
        async with gate:
            with self._errors(f"list {rel!r}", rel):
                infos = await self._raw.fs.list_files(self._path(rel))
        return [(i.name, i.size, i.is_dir) for i in infos]

    async def list_files(self, path: str = ".") -> list[FileEntry]:
        """Everything under `path`, relative to the project dir, one level at a time.

        Directories in SKIPPED_DIRS (node_modules and the like) are left out, as locally.
        """
        level = [normalize_relative(path)]
        gate = asyncio.Semaphore(LIST_CONCURRENCY)
        entries: list[FileEntry] = []
        while level:
            listings = await asyncio.gather(*(self._list_dir(rel, gate) for rel in level))
            below: list[str] = []
            for parent, children in zip(level, listings, strict=True):
                dirs = sorted(n for n, _, d in children if d and n not in SKIPPED_DIRS)
                files = sorted((n, s) for n, s, d in children if not d)
                for name in dirs:
                    rel = name if parent == "." else f"{parent}/{name}"
                    entries.append(FileEntry(path=rel, size=0, is_dir=True))
                    below.append(rel)
                for name, size in files:
                    rel = name if parent == "." else f"{parent}/{name}"
                    entries.append(FileEntry(path=rel, size=size, is_dir=False))
                if len(entries) >= LIST_LIMIT:
                    return entries[:LIST_LIMIT]
            level = below
        return entries

    async def delete_file(self, path: str) -> None:
        target = self._path(path)
        if target == self.project_dir:
            raise PathEscapeError("refusing to delete the project dir itself")
        with self._errors(f"delete {path!r}", path):
            await self._raw.fs.delete_file(target, recursive=True)

    # -- previews ---------------------------------------------------------------------------

    async def preview_link(self, port: int) -> DaytonaPreview:
        """Daytona's own preview URL for `port` and the token a private sandbox needs."""
        if not 1 <= port <= 65535:
            raise SandboxError(f"{port} is not a TCP port")
        with self._errors(f"get the preview link for port {port}"):
            link = await self._raw.get_preview_link(port)
        return DaytonaPreview(url=link.url, token=link.token or None)

    async def signed_preview(self, port: int, expires_s: int = 3600) -> DaytonaPreview:
        """A Daytona preview URL with the access embedded, valid for `expires_s` seconds."""
        if not 1 <= port <= 65535:
            raise SandboxError(f"{port} is not a TCP port")
        if expires_s < 1:
            raise SandboxError("a signed preview must be valid for at least one second")
        with self._errors(f"sign a preview URL for port {port}"):
            signed = await self._raw.create_signed_preview_url(port, expires_in_seconds=expires_s)
        return DaytonaPreview(url=signed.url, token=signed.token)

    async def upstream(self, port: int) -> Upstream:
        """Daytona's preview of `port`, with the headers our proxy adds for every visitor.

        The token is fetched now, never cached here: Daytona issues a new one whenever the
        sandbox restarts, and `refresh` fetches it again for a client that got a 401.
        """
        link = await self.preview_link(port)
        headers = {SKIP_PREVIEW_WARNING_HEADER: "true"}
        if link.token:
            headers[PREVIEW_TOKEN_HEADER] = link.token
        return Upstream(
            base_url=link.url, headers=headers, refresh=functools.partial(self.upstream, port)
        )

    # -- lifecycle --------------------------------------------------------------------------

    async def stop(self) -> None:
        with self._errors("stop the sandbox"):
            await self._raw.stop(timeout=LIFECYCLE_TIMEOUT_S)
        self._fresh_until = time.monotonic() + INFO_FRESH_S

    async def start(self) -> None:
        with self._errors("start the sandbox"):
            await self._raw.start(timeout=LIFECYCLE_TIMEOUT_S)
        self._fresh_until = time.monotonic() + INFO_FRESH_S

    async def delete(self) -> None:
        with self._errors("delete the sandbox"):
            await self._raw.delete(timeout=LIFECYCLE_TIMEOUT_S)
