"""A project's history as a user reads it: one entry per version, with what made it (a run's
prompt, a manual edit, a restore) and which files it changed, by how many lines."""

from __future__ import annotations

import asyncio
import difflib
from dataclasses import dataclass, field
from typing import Literal

from ..store.records import RunRecord, VersionRecord
from ..store.repo import Store

ChangeStatus = Literal["added", "deleted", "modified"]


@dataclass(frozen=True)
class FileChange:
    path: str
    status: ChangeStatus
    added: int
    removed: int
    """Lines; 0 and 0 for a file that is not text."""


@dataclass(frozen=True)
class TimelineEntry:
    version: VersionRecord
    prompt: str | None
    """The prompt of the run that made it; None for an edit or a restore."""
    changes: list[FileChange] = field(default_factory=list)


def _lines(content: bytes | None) -> list[str] | None:
    """The text's lines; None for content that is not UTF-8 text."""
    if content is None:
        return []
    try:
        return content.decode("utf-8").splitlines()
    except UnicodeDecodeError:
        return None


def _change(path: str, old: bytes | None, new: bytes | None) -> FileChange:
    status: ChangeStatus = "added" if old is None else "deleted" if new is None else "modified"
    before, after = _lines(old), _lines(new)
    if before is None or after is None:
        return FileChange(path, status, 0, 0)
    added = removed = 0
    for line in difflib.unified_diff(before, after, lineterm="", n=0):
        if line.startswith("+") and not line.startswith("+++"):
            added += 1
        elif line.startswith("-") and not line.startswith("---"):
            removed += 1
    return FileChange(path, status, added, removed)


def changes(old: dict[str, bytes], new: dict[str, bytes]) -> list[FileChange]:
    """What changed from `old` to `new`, file by file, in path order."""
    return [
        _change(path, old.get(path), new.get(path))
        for path in sorted(set(old) | set(new))
        if old.get(path) != new.get(path)
    ]


async def timeline(store: Store, project_id: str, runs: list[RunRecord]) -> list[TimelineEntry]:
    """Every version of the project, oldest first, each against the one before it."""
    prompts = {run.id: run.prompt for run in runs}
    entries: list[TimelineEntry] = []
    previous: dict[str, bytes] = {}
    for version in await store.list_versions(project_id):
        files = await store.version_files(project_id, version.number)
        changed = await asyncio.to_thread(changes, previous, files)
        prompt = prompts.get(version.run_id) if version.run_id else None
        entries.append(TimelineEntry(version, prompt, changed))
        previous = files
    return entries


async def hand_edited(store: Store, project_id: str) -> list[str]:
    """The files the user edited by hand since the project's last run, in path order."""
    versions = await store.list_versions(project_id)
    last_run = max((v.number for v in versions if v.kind == "run"), default=0)
    edited: set[str] = set()
    for version in versions:
        if version.kind != "edit" or version.number <= last_run:
            continue
        previous = version.number - 1
        before = await store.version_files(project_id, previous) if previous else {}
        after = await store.version_files(project_id, version.number)
        edited |= {c.path for c in await asyncio.to_thread(changes, before, after)}
    return sorted(edited)
