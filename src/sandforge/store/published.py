"""Published builds: a project's production files, served publicly at its slug's host.

They are a copy (blobs shared with the versions), so a published app keeps serving
whatever happens to the project's sandbox.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, select

from .db import Sessions
from .models import BlobRow, PublishedFileRow, PublishedRow, now
from .repo import Store


@dataclass(frozen=True)
class PublishedRecord:
    project_id: str
    slug: str
    version: int
    published_at: float
    files: int = 0


def _record(row: PublishedRow, files: int = 0) -> PublishedRecord:
    return PublishedRecord(row.project_id, row.slug, row.version, row.published_at, files)


class PublishedSites:
    def __init__(self, store: Store) -> None:
        self._store = store
        self._session = Sessions(store.engine)

    async def publish(
        self, project_id: str, slug: str, version: int, files: dict[str, bytes]
    ) -> PublishedRecord:
        """Publish (or republish) the project: its files are replaced in one transaction."""
        async with self._session.begin() as session:
            # The blobs are content-addressed and shared with the project's versions.
            shas = await self._store._put_blobs(session, files)
            row = await session.get(PublishedRow, project_id)
            if row is None:
                row = PublishedRow(project_id=project_id, slug=slug)
                session.add(row)
            row.version, row.published_at = version, now()
            await session.flush()
            await session.execute(
                delete(PublishedFileRow).where(PublishedFileRow.project_id == project_id)
            )
            session.add_all(
                PublishedFileRow(project_id=project_id, path=path, blob_sha=sha)
                for path, sha in shas.items()
            )
            return _record(row, len(files))

    async def get(self, project_id: str) -> PublishedRecord | None:
        async with self._session() as session:
            row = await session.get(PublishedRow, project_id)
            return _record(row) if row is not None else None

    async def by_slug(self, slug: str) -> PublishedRecord | None:
        async with self._session() as session:
            row = await session.scalar(select(PublishedRow).where(PublishedRow.slug == slug))
            return _record(row) if row is not None else None

    async def read_file(self, slug: str, path: str) -> bytes | None:
        async with self._session() as session:
            content: bytes | None = await session.scalar(
                select(BlobRow.content)
                .join(PublishedFileRow, PublishedFileRow.blob_sha == BlobRow.sha)
                .join(PublishedRow, PublishedRow.project_id == PublishedFileRow.project_id)
                .where(PublishedRow.slug == slug, PublishedFileRow.path == path)
            )
            return content

    async def unpublish(self, project_id: str) -> bool:
        async with self._session.begin() as session:
            result = await session.execute(
                delete(PublishedRow).where(PublishedRow.project_id == project_id)
            )
            return bool(getattr(result, "rowcount", 0))
