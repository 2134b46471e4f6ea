"""The persistent flow's workspace: the Sandbox file protocol over a project's stored files.

There is no machine behind it, so commands cannot run; the agent is told so.
"""

from __future__ import annotations

from ..sandbox import (
    ExecResult,
    FileEntry,
    ProcessStatus,
    SandboxError,
    SandboxFileNotFound,
    SandboxInfo,
    SandboxState,
    Upstream,
)
from ..sandbox.base import normalize_relative
from .errors import FileNotStored
from .repo import Store

NO_COMMANDS = (
    "This project uses the persistent flow: its files live in the database and there is no "
    "sandbox, so commands cannot run. Write the files directly."
)


class StoredWorkspace:
    provider = "store"
    project_dir = "/"

    def __init__(self, store: Store, project_id: str) -> None:
        self.store = store
        self.project_id = project_id

    @property
    def id(self) -> str:
        return self.project_id

    async def info(self) -> SandboxInfo:
        project = await self.store.get_project(self.project_id)
        return SandboxInfo(
            id=self.project_id,
            provider=self.provider,
            state=SandboxState.STARTED,
            labels={},
            public=project.public,
            created_at=project.created_at,
            preview_token=project.preview_token,
        )

    async def exec(
        self,
        cmd: str,
        *,
        cwd: str | None = None,
        env: dict[str, str] | None = None,
        timeout: float | None = None,
    ) -> ExecResult:
        return ExecResult(exit_code=127, stdout="", stderr=NO_COMMANDS)

    async def start_process(
        self, name: str, cmd: str, *, cwd: str | None = None, env: dict[str, str] | None = None
    ) -> None:
        raise SandboxError(NO_COMMANDS)

    async def process_status(self, name: str) -> ProcessStatus:
        raise SandboxError(NO_COMMANDS)

    async def read_file(self, path: str) -> bytes:
        try:
            return await self.store.read_file(self.project_id, normalize_relative(path))
        except FileNotStored:
            raise SandboxFileNotFound(f"{path!r} does not exist") from None

    async def write_file(self, path: str, content: bytes) -> None:
        await self.store.write_file(self.project_id, normalize_relative(path), content)

    async def list_files(self, path: str = ".") -> list[FileEntry]:
        prefix = normalize_relative(path)
        sizes = await self.store.file_sizes(self.project_id)
        return [
            FileEntry(path=p, size=size, is_dir=False)
            for p, size in sizes.items()
            if prefix == "." or p == prefix or p.startswith(prefix + "/")
        ]

    async def delete_file(self, path: str) -> None:
        if not await self.store.delete_file(self.project_id, normalize_relative(path)):
            raise SandboxFileNotFound(f"{path!r} does not exist")

    async def upstream(self, port: int) -> Upstream:
        raise SandboxError("the persistent flow is served from stored files, not a port")

    async def stop(self) -> None:
        return None

    async def start(self) -> None:
        return None

    async def delete(self) -> None:
        return None
