"""The model's file and command operations, each answered with the seed's `tool` event.

Files are any `ProjectFiles`: a sandbox's, or the persistent flow's stored files.
Commands need a sandbox; without one the model is told that it must write files directly.
"""

from __future__ import annotations

import difflib
from typing import Protocol

from ..events import ToolAction, ToolData, ToolEvent
from ..sandbox import ExecResult, FileEntry, Sandbox, SandboxFileNotFound

NO_COMMANDS = (
    "This project uses the persistent flow: its files live in the database and there is no "
    "sandbox, so commands cannot run. Write the files directly."
)


class ProjectFiles(Protocol):
    """What the model edits: paths are relative to the project dir."""

    async def read_file(self, path: str) -> bytes: ...
    async def write_file(self, path: str, content: bytes) -> None: ...
    async def list_files(self, path: str = ".") -> list[FileEntry]: ...
    async def delete_file(self, path: str) -> None: ...


def count_lines(text: str) -> int:
    return len(text.splitlines())


def lines_added(old: str, new: str) -> int:
    """Lines present in `new` that a line diff from `old` adds."""
    diff = difflib.unified_diff(old.splitlines(), new.splitlines(), lineterm="", n=0)
    return sum(1 for line in diff if line.startswith("+") and not line.startswith("+++"))


def _event(action: ToolAction, file: str, **extra: int) -> ToolEvent:
    return ToolEvent(data=ToolData(action=action, file=file, **extra))


class EditError(Exception):
    """An edit the model asked for could not be applied; the message goes back to the model."""


class FileEditor:
    def __init__(self, files: ProjectFiles, sandbox: Sandbox | None) -> None:
        self.files = files
        self.sandbox = sandbox
        """Where commands run; None in the persistent flow."""

    async def _read_text(self, path: str) -> str | None:
        try:
            return (await self.files.read_file(path)).decode("utf-8", errors="replace")
        except SandboxFileNotFound:
            return None

    async def read(self, path: str) -> tuple[str, ToolEvent]:
        content = (await self.files.read_file(path)).decode("utf-8", errors="replace")
        return content, _event("read", path)

    async def write(self, path: str, content: str) -> ToolEvent:
        old = await self._read_text(path)
        await self.files.write_file(path, content.encode())
        if old is None:
            return _event("create", path, linesAdded=count_lines(content))
        return _event("update", path, linesAdded=lines_added(old, content))

    async def edit(self, path: str, search: str, replace: str) -> ToolEvent:
        old = await self._read_text(path)
        if old is None:
            raise EditError(f"{path} does not exist; create it with write_file")
        found = old.count(search)
        if not search or found == 0:
            raise EditError(f"the search text was not found in {path}; read the file and retry")
        if found > 1:
            raise EditError(f"the search text occurs {found} times in {path}; include more context")
        new = old.replace(search, replace, 1)
        await self.files.write_file(path, new.encode())
        return _event("update", path, linesAdded=lines_added(old, new))

    async def delete(self, path: str) -> ToolEvent:
        await self.files.delete_file(path)
        return _event("delete", path)

    async def run(self, command: str, timeout: float | None = None) -> tuple[ExecResult, ToolEvent]:
        if self.sandbox is None:
            result = ExecResult(exit_code=127, stdout="", stderr=NO_COMMANDS)
        else:
            result = await self.sandbox.exec(command, timeout=timeout)
        return result, _event("run", command, exitCode=result.exit_code)
