"""An in-memory Sandbox and provider, for domain tests that must run in milliseconds.

Like httpx's MockTransport: the real protocol, with files in a dict. Commands are
not run; each `exec` is recorded and answered by `on_exec` (by default a failure, the
way a sandbox without the tool would answer). The end-to-end suites, on real bwrap
sandboxes, remain the contract; these fakes only make the domain rules cheap to test.
"""

from __future__ import annotations

import posixpath
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from sandforge.config import SandboxProviderName
from sandforge.ids import new_id
from sandforge.sandbox import (
    ExecResult,
    FileEntry,
    ProcessStatus,
    SandboxFileNotFound,
    SandboxInfo,
    SandboxNotFound,
    SandboxSpec,
    SandboxState,
    SandboxStopped,
    Upstream,
)
from sandforge.sandbox.base import normalize_relative

ExecHandler = Callable[[str, dict[str, str]], ExecResult]


def no_tools(cmd: str, env: dict[str, str]) -> ExecResult:
    return ExecResult(exit_code=127, stdout="", stderr=f"{cmd.split()[0]}: not found")


@dataclass
class FakeSandbox:
    spec: SandboxSpec
    id: str = field(default_factory=lambda: new_id("sandbox"))
    provider: str = "local"
    project_dir: str = "/workspace"
    files: dict[str, bytes] = field(default_factory=dict)
    state: SandboxState = SandboxState.STARTED
    created_at: float = field(default_factory=time.time)
    preview_token: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    processes: dict[str, str] = field(default_factory=dict)
    commands: list[str] = field(default_factory=list)
    on_exec: ExecHandler = no_tools
    deleted: bool = False

    def _running(self) -> None:
        if self.state != SandboxState.STARTED:
            raise SandboxStopped(f"sandbox {self.id} is not running")

    async def info(self) -> SandboxInfo:
        return SandboxInfo(
            id=self.id,
            provider=self.provider,
            state=self.state,
            labels=dict(self.spec.labels),
            public=self.spec.public,
            created_at=self.created_at,
            preview_token=self.preview_token,
        )

    async def exec(
        self,
        cmd: str,
        *,
        cwd: str | None = None,
        env: dict[str, str] | None = None,
        timeout: float | None = None,
    ) -> ExecResult:
        self._running()
        self.commands.append(cmd)
        return self.on_exec(cmd, env or {})

    async def start_process(
        self, name: str, cmd: str, *, cwd: str | None = None, env: dict[str, str] | None = None
    ) -> None:
        self._running()
        self.processes[name] = cmd

    async def process_status(self, name: str) -> ProcessStatus:
        self._running()
        return ProcessStatus(name, name in self.processes, None, "")

    async def read_file(self, path: str) -> bytes:
        self._running()
        clean = normalize_relative(path)
        if clean not in self.files:
            raise SandboxFileNotFound(f"{path!r} does not exist")
        return self.files[clean]

    async def write_file(self, path: str, content: bytes) -> None:
        self._running()
        self.files[normalize_relative(path)] = content

    async def list_files(self, path: str = ".") -> list[FileEntry]:
        self._running()
        prefix = normalize_relative(path)
        found = sorted(p for p in self.files if prefix == "." or p.startswith(prefix + "/"))
        dirs = sorted({posixpath.dirname(p) for p in found} - {"", prefix})
        return [FileEntry(d, 0, True) for d in dirs] + [
            FileEntry(p, len(self.files[p]), False) for p in found
        ]

    async def delete_file(self, path: str) -> None:
        self._running()
        clean = normalize_relative(path)
        gone = [p for p in self.files if p == clean or p.startswith(clean + "/")]
        if not gone:
            raise SandboxFileNotFound(f"{path!r} does not exist")
        for p in gone:
            del self.files[p]

    async def upstream(self, port: int) -> Upstream:
        return Upstream(base_url=f"http://fake-{self.id}:{port}")

    async def stop(self) -> None:
        self.state = SandboxState.STOPPED
        self.processes.clear()

    async def start(self) -> None:
        self.state = SandboxState.STARTED

    async def delete(self) -> None:
        self.deleted = True


class FakeProvider:
    def __init__(self, name: SandboxProviderName = "local") -> None:
        self.name: SandboxProviderName = name
        self.sandboxes: dict[str, FakeSandbox] = {}

    async def create(self, spec: SandboxSpec) -> FakeSandbox:
        sandbox = FakeSandbox(spec=spec, provider=self.name)
        self.sandboxes[sandbox.id] = sandbox
        return sandbox

    async def get(self, sandbox_id: str) -> FakeSandbox:
        sandbox = self.sandboxes.get(sandbox_id)
        if sandbox is None or sandbox.deleted:
            raise SandboxNotFound(f"no sandbox {sandbox_id!r}")
        return sandbox

    async def list(self, labels: dict[str, str] | None = None) -> list[SandboxInfo]:
        infos = [await s.info() for s in self.sandboxes.values() if not s.deleted]
        return [i for i in infos if all(i.labels.get(k) == v for k, v in (labels or {}).items())]

    async def aclose(self) -> None:
        return None
