"""A project's versions: each turn is a git commit in its sandbox, mirrored in the store.

The store keeps regular files only. A generated app may also leave symlinks, FIFOs or
files over the file limit; git keeps symlinks as symlinks, and the stored version skips
what it cannot hold, saying so, rather than failing a run that built fine.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from ..sandbox import (
    FileEntry,
    NotARegularFile,
    PathEscapeError,
    Sandbox,
    SandboxFileNotFound,
    SandboxFileTooLarge,
)
from ..store.models import MAX_PATH_CHARS
from ..store.records import VersionRecord
from ..store.repo import Store
from ..store.retry import retrying

log = logging.getLogger(__name__)

MAX_SNAPSHOT_FILES = 2000
MAX_SKIPS_SHOWN = 20
MAX_COMMIT_MESSAGE = 200
# The message comes in through the environment, never the command line, so nothing in it
# is ever parsed by the shell.
COMMIT_SCRIPT = (
    "git init -q 2>/dev/null; "
    "printf 'node_modules/\\n' > .git/info/exclude && "
    "git add -A && "
    "git -c user.name=sandforge -c user.email=sandforge@localhost "
    'commit -q --allow-empty -m "$SANDFORGE_COMMIT_MESSAGE" && git rev-parse HEAD'
)


def commit_message(prompt: str) -> str:
    """The first line of a prompt, as a commit message: short, and free of NULs (which no
    environment variable can carry)."""
    lines = prompt.replace("\x00", "").strip().splitlines()
    return (lines[0] if lines else "")[:MAX_COMMIT_MESSAGE] or "Update"


@dataclass
class Snapshot:
    files: dict[str, bytes] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    """One line per file the store could not keep, saying why."""

    def warning(self) -> str | None:
        if not self.skipped:
            return None
        shown = "; ".join(self.skipped[:MAX_SKIPS_SHOWN])
        extra = len(self.skipped) - MAX_SKIPS_SHOWN
        more = f" and {extra} more" if extra > 0 else ""
        return f"Not kept in the stored version: {shown}{more}."


async def git_commit(sandbox: Sandbox, message: str) -> str | None:
    """A git commit of the project dir; None where git is unavailable in the sandbox."""
    result = await sandbox.exec(COMMIT_SCRIPT, env={"SANDFORGE_COMMIT_MESSAGE": message})
    sha = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""
    if result.exit_code != 0 or len(sha) != 40:
        log.warning("git commit failed in sandbox %s: %s", sandbox.id, result.stderr.strip())
        return None
    return sha


def _unstorable(path: str) -> str | None:
    """Why the store cannot key a file by `path` (it is text, of a bounded length), if so."""
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return "a name that is not UTF-8; git keeps it"
    if len(path) > MAX_PATH_CHARS:
        return f"a path over {MAX_PATH_CHARS} characters; git keeps it"
    return None


def _shown(path: str) -> str:
    """`path` fit for an event: the bytes of a name that is not UTF-8 (which arrive as the
    surrogates Python decodes them to) shown escaped, as `\\xff`."""
    try:
        raw = path.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return path.encode("utf-8", "backslashreplace").decode("utf-8")
    return raw.decode("utf-8", "backslashreplace")


async def _take(sandbox: Sandbox, entry: FileEntry, taken: Snapshot) -> None:
    """Add one listed file to the snapshot, or the reason it is left out."""
    why = _unstorable(entry.path)
    if why is None:
        try:
            taken.files[entry.path] = await sandbox.read_file(entry.path)
            return
        except SandboxFileTooLarge:
            why = f"{entry.size} bytes, over the file limit"
        except PathEscapeError:
            why = "a symlink; git keeps it"
        except SandboxFileNotFound:
            return  # removed while we looked
        except NotARegularFile:
            why = "not a regular file"
    taken.skipped.append(f"{_shown(entry.path)} ({why})")


async def snapshot(sandbox: Sandbox) -> Snapshot:
    """The project's regular files (the listing leaves out node_modules, .git and the like)."""
    taken = Snapshot()
    entries = [e for e in await sandbox.list_files() if not e.is_dir]
    for entry in entries[:MAX_SNAPSHOT_FILES]:
        await _take(sandbox, entry, taken)
    if len(entries) > MAX_SNAPSHOT_FILES:
        taken.skipped.append(f"{len(entries) - MAX_SNAPSHOT_FILES} files past the first 2000")
    return taken


async def save_sandbox_version(
    store: Store,
    sandbox: Sandbox,
    project_id: str,
    message: str,
    run_id: str | None,
    retry_within_s: float = 0.0,
) -> tuple[VersionRecord, Snapshot]:
    """Commit the sandbox's files and store them as the project's next version; the store
    write is retried for up to `retry_within_s` while the database is away."""
    commit = await git_commit(sandbox, message)
    taken = await snapshot(sandbox)
    version = await retrying(
        lambda: store.save_version(
            project_id, taken.files, message=message, run_id=run_id, commit=commit
        ),
        retry_within_s,
        f"saving a version of {project_id}",
    )
    return version, taken


async def replace_files(sandbox: Sandbox, files: dict[str, bytes]) -> None:
    """Make `files` the sandbox's whole project: others are deleted, these written."""
    for entry in await sandbox.list_files():
        if not entry.is_dir and entry.path not in files:
            await sandbox.delete_file(entry.path)
    for path, content in files.items():
        await sandbox.write_file(path, content)
