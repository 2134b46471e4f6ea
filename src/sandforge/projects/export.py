"""A project version as a zip archive: what `export.zip` and `sandforge export` hand out."""

from __future__ import annotations

import asyncio
import io
import time
import zipfile

from ..errors import NotFound
from ..store.records import ProjectRecord, VersionRecord
from ..store.repo import Store
from .names import slugify

ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
"""The earliest time a zip entry can carry."""


class NoVersionYet(NotFound):
    code = "no_version"


async def export_version(
    store: Store, project_id: str, number: int | None
) -> tuple[VersionRecord, dict[str, bytes]]:
    """Version `number` of a project (its latest when None) and its files."""
    versions = await store.list_versions(project_id)
    if number is None:
        if not versions:
            raise NoVersionYet(
                f"Project {project_id} has no saved version yet; export it once a run has finished."
            )
        number = versions[-1].number
    files = await store.version_files(project_id, number)  # VersionNotFound if there is none
    return next(v for v in versions if v.number == number), files


def archive_name(project: ProjectRecord, version: VersionRecord) -> str:
    return f"{slugify(project.name)}-v{version.number}.zip"


def zip_archive(files: dict[str, bytes], created_at: float) -> bytes:
    """The files as a zip, every entry dated `created_at`: the same version always gives the
    same bytes."""
    stamp = max(time.gmtime(created_at)[:6], ZIP_EPOCH)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(files):
            entry = zipfile.ZipInfo(path, date_time=stamp)
            entry.external_attr = 0o644 << 16
            entry.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(entry, files[path])
    return buffer.getvalue()


async def zip_version(store: Store, project_id: str, number: int | None) -> tuple[str, bytes]:
    """The archive's file name and bytes, zipped off the event loop."""
    project = await store.get_project(project_id)
    version, files = await export_version(store, project_id, number)
    content = await asyncio.to_thread(zip_archive, files, version.created_at)
    return archive_name(project, version), content
