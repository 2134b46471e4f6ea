"""The Store when its database goes away: outages come out typed, retried writes land once,
and what retrying cannot fix is not retried."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy.exc import IntegrityError

from sandforge.store.errors import StoreDiskFull, StoreUnavailable
from sandforge.store.repo import Store
from sandforge.store.retry import retrying
from tests.dbs import database, private_postgres, small_disk


async def new_project(store: Store) -> str:
    project = await store.create_project(
        name="p", project_type="web-app", flow="sandbox", agents=[], provider="local"
    )
    return project.id


@pytest.fixture(params=["sqlite", "postgres"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    async with database(request.param, tmp_path) as url:
        opened = await Store.open(url, tmp_path)
        try:
            yield opened
        finally:
            await opened.close()


async def test_writes_retried_after_a_lost_reply_land_once(store: Store) -> None:
    """The database committed, the reply was lost, the writer tried again."""
    project_id = await new_project(store)
    await store.create_run("run1", project_id, {})
    for _ in range(2):
        await store.append_event("run1", 1, '{"type":"progress"}')
    assert await store.events_after("run1", 0) == [(1, '{"type":"progress"}')]

    first = await store.save_version(project_id, {"a.txt": b"a"}, message="m", run_id="run1")
    again = await store.save_version(project_id, {"a.txt": b"a"}, message="m", run_id="run1")
    assert again == first
    assert [v.number for v in await store.list_versions(project_id)] == [1]


async def test_what_retrying_cannot_fix_is_raised_at_once(store: Store) -> None:
    """A run of a project that does not exist violates a constraint: no retry can help."""
    write = retrying(lambda: store.create_run("run2", "no-such-project", {}), 60, "test")
    with pytest.raises(IntegrityError):
        await asyncio.wait_for(write, 30)


async def test_a_stopped_postgres_is_an_outage_that_passes() -> None:
    async with private_postgres() as postgres:
        store = await Store.open(await postgres.create_database(), Path("/nonexistent"))
        try:
            project_id = await new_project(store)
            await postgres.stop()
            with pytest.raises(StoreUnavailable):
                await store.get_project(project_id)

            async def back_soon() -> None:
                await asyncio.sleep(2)
                await postgres.start()

            restart = asyncio.create_task(back_soon())
            project = await retrying(lambda: store.get_project(project_id), 60, "test")
            assert project.id == project_id
            await restart
        finally:
            await store.close()


async def test_sqlite_on_a_full_disk_is_disk_full(tmp_path: Path) -> None:
    with small_disk() as disk:
        store = await Store.open(f"sqlite+aiosqlite:///{disk.path / 'db.sqlite'}", tmp_path)
        try:
            await asyncio.to_thread(disk.fill)
            with pytest.raises(StoreDiskFull):
                for _ in range(100):  # the WAL may hold a few pages' worth first
                    await new_project(store)
            await asyncio.to_thread(disk.free)
            await new_project(store)
        finally:
            await store.close()
