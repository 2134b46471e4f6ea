"""The Sandbox and SandboxProvider protocols, the spec a sandbox is made from, and errors.

Providers are pluggable the way httpx transports are: the pipeline, the preview
proxy and the API only ever see these protocols.
"""

from __future__ import annotations

import posixpath
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal, Protocol, runtime_checkable

from ..config import SandboxProviderName
from ..errors import (
    InsufficientStorage,
    InvalidRequest,
    NotFound,
    PayloadTooLarge,
    SandforgeError,
    error_for_code,
)
from . import wire

SKIPPED_DIRS = frozenset(
    {
        "node_modules",
        ".git",
        "__pycache__",
        ".venv",
        ".packages",
        "dist",
        "build",
        ".next",
        ".cache",
        ".vite",
    }
)
"""Folders a file listing leaves out (installed packages, build output, caches), in every
provider and in the UI's file tree."""


class SandboxState(StrEnum):
    STARTED = "started"
    STOPPED = "stopped"
    ERROR = "error"


@dataclass(frozen=True)
class SandboxSpec:
    """Everything a sandbox is made from. Every limit has a documented default.

    The local provider enforces the limits as described on each field; remote providers
    map what they can onto their own resources.
    """

    labels: dict[str, str] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    """The sandbox's whole environment beyond PATH, HOME and LANG. Nothing else enters."""
    network: Literal["none", "egress"] = "none"
    """`none`: loopback only. `egress`: outbound through a user-mode stack (slirp4netns);
    the host's loopback (127.0.0.1: databases, the server itself) stays unreachable."""
    public: bool = False
    memory_mb: int = 1024
    """Memory of all processes together, /tmp included (cgroup memory limit, no swap).
    Going over it wakes the OOM killer inside the sandbox only."""
    pids: int = 256
    """Processes and threads at once (cgroup pids.max); a fork bomb stops there."""
    cpu_weight: int = 100
    """Relative CPU share against other sandboxes, 1-10000 (cgroup v2 cpu.weight; on v1,
    cpu.shares = weight * 1024 / 100). 100 is an ordinary process's share."""
    exec_timeout_s: float = 120.0
    """Default timeout of one exec; its whole process group is killed when it passes."""
    output_cap_bytes: int = 1 << 20
    """Captured bytes per stream (stdout, stderr) of one exec; the rest is discarded and
    the result says `truncated`."""
    max_file_bytes: int = 10 << 20
    """Largest file the file API reads or writes."""
    disk_mb: int = 1024
    """Size of the sandbox's own filesystem (an ext4 image holding the project dir, HOME and
    process logs), so a full disk is ENOSPC inside the sandbox only. It is also the largest
    single file a command may write (RLIMIT_FSIZE)."""
    tmp_mb: int = 256
    """Size of the private /tmp (tmpfs; its pages also count against `memory_mb`)."""
    packages: bool = False
    """Reach the npm registry and PyPI (only those) through the host's package bridge, even
    without egress; npm and pip inside are configured for it. Local sandboxes only: remote
    providers have their own network."""
    package_mounts: dict[str, str] = field(default_factory=dict)
    """Project-relative path → host dir of a template's installed packages (node_modules,
    Python's), so a sandbox needs no network for them. Under full isolation each is the
    lower layer of an overlay whose writes land on the sandbox's own disk (`npm install`
    works, the cache never changes); otherwise it is mounted read-only. Providers that
    cannot mount host dirs (Daytona) ignore it; the pipeline then installs the packages
    inside the sandbox."""
    # Provider-side lifecycle, in minutes (Daytona's unit); 0 disables.
    auto_stop_minutes: int = 30
    auto_archive_minutes: int = 60 * 24 * 7
    auto_delete_minutes: int = -1
    image: str | None = None
    snapshot: str | None = None
    stack: str | None = None
    """The project type. Providers that build images (Daytona) start its sandboxes from an
    image with the type's packages in it, unless an image or snapshot is given."""

    def __post_init__(self) -> None:
        if self.network not in ("none", "egress"):
            raise ValueError(f"network must be 'none' or 'egress', not {self.network!r}")
        minimums = {
            "memory_mb": (self.memory_mb, 32),
            "pids": (self.pids, 16),
            "cpu_weight": (self.cpu_weight, 1),
            "exec_timeout_s": (self.exec_timeout_s, 0.01),
            "output_cap_bytes": (self.output_cap_bytes, 1),
            "max_file_bytes": (self.max_file_bytes, 1),
            "disk_mb": (self.disk_mb, 16),
            "tmp_mb": (self.tmp_mb, 1),
        }
        for name, (value, minimum) in minimums.items():
            if value < minimum:
                raise ValueError(f"{name} must be at least {minimum}, not {value}")
        if self.cpu_weight > 10000:
            raise ValueError(f"cpu_weight must be at most 10000, not {self.cpu_weight}")


@dataclass(frozen=True)
class ExecResult:
    exit_code: int
    stdout: str
    stderr: str
    timed_out: bool = False
    truncated: bool = False


@dataclass(frozen=True)
class ProcessStatus:
    name: str
    running: bool
    exit_code: int | None
    log_tail: str


@dataclass(frozen=True)
class FileEntry:
    path: str
    size: int
    is_dir: bool


@dataclass(frozen=True)
class Upstream:
    """How the preview proxy reaches a port inside a sandbox.

    Local sandboxes bridge it through a unix socket (`uds`); remote providers
    give a URL and the headers (a provider token) the proxy adds server-side.
    """

    base_url: str
    uds: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    """Added to every request server-side. A client's own header of the same name must
    never be forwarded in their place."""
    refresh: Callable[[], Awaitable[Upstream]] | None = field(
        default=None, compare=False, repr=False
    )
    """Asks the provider again; its headers can change while the sandbox lives (Daytona
    issues a new preview token when a sandbox restarts). `upstream_client` calls it when
    the upstream answers 401."""


@dataclass(frozen=True)
class SandboxInfo:
    id: str
    provider: str
    state: SandboxState
    labels: dict[str, str]
    public: bool
    created_at: float
    preview_token: str


class SandboxError(SandforgeError):
    """Base of every sandbox failure; its message says what to do."""

    code = "sandbox_error"
    http_status = 409


class SandboxNotFound(SandboxError):
    code = "sandbox_not_found"
    http_status = NotFound.http_status


class SandboxStopped(SandboxError):
    """The sandbox exists but is not running; start it and retry."""

    code = "sandbox_stopped"


class SandboxUnavailable(SandboxError):
    """The provider cannot run here (not configured, not installed): the request asked for
    something this server cannot do, so it is the request's to change (400)."""

    code = "sandbox_unavailable"
    http_status = InvalidRequest.http_status


class PathEscapeError(SandboxError):
    code = "path_escape"
    http_status = InvalidRequest.http_status


class SandboxFileNotFound(SandboxError):
    code = "file_not_found"
    http_status = NotFound.http_status


class NotARegularFile(SandboxError):
    """The path is a FIFO, socket or device: the file API reads and writes regular files only."""

    code = "not_a_file"
    http_status = InvalidRequest.http_status


class SandboxFileTooLarge(SandboxError):
    """A file over the spec's `max_file_bytes` was read or written through the file API."""

    code = "file_too_large"
    http_status = PayloadTooLarge.http_status


class SandboxDiskFull(SandboxError, InsufficientStorage):
    """The sandbox's filesystem (`disk_mb`) is full."""

    code = "disk_full"
    http_status = InsufficientStorage.http_status


class HostDiskFull(SandboxError, InsufficientStorage):
    """The host's disk has no room for another sandbox: it is full, or it has less free space
    than the floor (SANDFORGE_MIN_FREE_DISK_MB)."""

    code = "host_disk_full"
    http_status = InsufficientStorage.http_status


@runtime_checkable
class Sandbox(Protocol):
    @property
    def id(self) -> str: ...
    @property
    def provider(self) -> str: ...
    @property
    def project_dir(self) -> str:
        """The project dir as seen inside the sandbox."""
        ...

    async def info(self) -> SandboxInfo: ...
    async def exec(
        self,
        cmd: str,
        *,
        cwd: str | None = None,
        env: dict[str, str] | None = None,
        timeout: float | None = None,
    ) -> ExecResult: ...
    async def start_process(
        self, name: str, cmd: str, *, cwd: str | None = None, env: dict[str, str] | None = None
    ) -> None: ...
    async def process_status(self, name: str) -> ProcessStatus: ...
    async def read_file(self, path: str) -> bytes: ...
    async def write_file(self, path: str, content: bytes) -> None: ...
    async def list_files(self, path: str = ".") -> list[FileEntry]: ...
    async def delete_file(self, path: str) -> None: ...
    async def upstream(self, port: int) -> Upstream: ...
    async def stop(self) -> None: ...
    async def start(self) -> None: ...
    async def delete(self) -> None: ...


class SandboxProvider(Protocol):
    name: SandboxProviderName

    async def create(self, spec: SandboxSpec) -> Sandbox: ...
    async def get(self, sandbox_id: str) -> Sandbox: ...
    async def list(self, labels: dict[str, str] | None = None) -> list[SandboxInfo]: ...
    async def aclose(self) -> None:
        """Release what the provider holds (Daytona's HTTP session); sandboxes keep running."""
        ...


def check_reply(reply: wire.Message, family: type[SandforgeError] = SandboxError) -> wire.Message:
    """`reply` if it says it worked; otherwise the error it reports, as `family`'s class for its
    code (`disk_full` comes back as SandboxDiskFull), or `family` itself for a code it lacks."""
    failure = wire.failure(reply)
    if failure is not None:
        raise error_for_code(failure.code, failure.message, family)
    return reply


def normalize_relative(path: str) -> str:
    """The clean project-relative form of `path`, or PathEscapeError.

    Absolute paths and any `..` that climbs out are refused rather than fixed.
    """
    if not path or "\x00" in path:
        raise PathEscapeError(f"invalid path {path!r}")
    if path.startswith("/"):
        raise PathEscapeError(f"{path!r} is absolute; paths are relative to the project dir")
    clean = posixpath.normpath(path)
    if clean == ".." or clean.startswith("../"):
        raise PathEscapeError(f"{path!r} points outside the project dir")
    return clean
