"""The persistent flow's files: a project's working tree in the store, edited in place.

It offers the file half of a sandbox (`agent.edits.ProjectFiles`) and nothing more:
there is no machine behind it, so nothing runs and nothing is started or stopped.
"""

from __future__ import annotations

from ..sandbox import FileEntry, SandboxFileNotFound
from ..sandbox.base import normalize_relative
from ..store.errors import FileNotStored
from ..store.repo import Store


class StoredFiles:
    def __init__(self, store: Store, project_id: str) -> None:
        self.store = store
        self.project_id = project_id

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
