"""Where each project is pushed on GitHub, and how far its history has gone there."""

from __future__ import annotations

from dataclasses import dataclass

from .db import Sessions
from .models import GitHubLinkRow, now
from .repo import Store


@dataclass(frozen=True)
class GitHubLinkRecord:
    project_id: str
    repo: str
    pushed_version: int
    pushed_commit: str | None
    updated_at: float


class GitHubLinks:
    def __init__(self, store: Store) -> None:
        self._session = Sessions(store.engine)

    async def get(self, project_id: str) -> GitHubLinkRecord | None:
        async with self._session() as session:
            row = await session.get(GitHubLinkRow, project_id)
            if row is None:
                return None
            return GitHubLinkRecord(
                row.project_id, row.repo, row.pushed_version, row.pushed_commit, row.updated_at
            )

    async def save(self, project_id: str, repo: str, version: int, commit: str) -> None:
        async with self._session.begin() as session:
            row = await session.get(GitHubLinkRow, project_id)
            if row is None:
                row = GitHubLinkRow(project_id=project_id)
                session.add(row)
            row.repo, row.pushed_version, row.pushed_commit = repo, version, commit
            row.updated_at = now()
