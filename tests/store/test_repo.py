"""The Store on SQLite and on Postgres: migrations, projects, runs, events, files, versions."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from sandforge.store.errors import FileNotStored, ProjectNotFound, RunNotFound, VersionNotFound
from sandforge.store.repo import Store
from tests.dbs import database


@pytest.fixture(params=["sqlite", "postgres"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    async with database(request.param, tmp_path) as url:
        opened = await Store.open(url, tmp_path)
        try:
            yield opened
        finally:
            await opened.close()


async def new_project(store: Store) -> str:
    project = await store.create_project(
        name="calc",
        project_type="web-app",
        flow="sandbox",
        agents=["frontend-dev"],
        provider="local",
    )
    return project.id


async def test_migrations_are_idempotent(store: Store, tmp_path: Path) -> None:
    from sandforge.store.db import migrate

    await migrate(store.engine)
    project_id = await new_project(store)
    assert (await store.get_project(project_id)).name == "calc"


async def test_unknown_project(store: Store) -> None:
    with pytest.raises(ProjectNotFound):
        await store.get_project("pj-nope")


async def test_events_are_stored_in_order_and_replayed_after_a_seq(store: Store) -> None:
    project_id = await new_project(store)
    await store.create_run("run1", project_id, {"messages": []})
    for seq in range(1, 6):
        await store.append_event("run1", seq, f'{{"n":{seq}}}')
    assert [seq for seq, _ in await store.events_after("run1", 2)] == [3, 4, 5]
    run = await store.get_run("run1")
    assert run.events == 5 and run.state == "running"
    assert [r.id for r in await store.running_runs()] == ["run1"]
    await store.finish_run("run1", "succeeded", tokens_used=42, sandbox_id="sb1")
    run = await store.get_run("run1")
    assert run.state == "succeeded" and run.tokens_used == 42
    assert await store.running_runs() == []


async def test_conversation_history_keeps_order(store: Store) -> None:
    project_id = await new_project(store)
    await store.add_message(project_id, "run1", "user", "make a calculator")
    await store.add_message(project_id, "run1", "assistant", "done")
    await store.add_message(project_id, "run2", "user", "make it red")
    assert [(m.role, m.content) for m in await store.history(project_id)] == [
        ("user", "make a calculator"),
        ("assistant", "done"),
        ("user", "make it red"),
    ]


async def test_versions_snapshot_files_and_share_blobs(store: Store) -> None:
    project_id = await new_project(store)
    one = {"index.html": b"<h1>one</h1>", "a.js": b"1"}
    two = {"index.html": b"<h1>two</h1>", "a.js": b"1"}
    v1 = await store.save_version(project_id, one, message="first")
    v2 = await store.save_version(project_id, two, message="second")
    assert (v1.number, v2.number) == (1, 2)
    assert await store.version_files(project_id, 1) == {"a.js": b"1", "index.html": b"<h1>one</h1>"}
    assert await store.files(project_id) == {"a.js": b"1", "index.html": b"<h1>two</h1>"}
    assert [v.message for v in await store.list_versions(project_id)] == ["first", "second"]
    with pytest.raises(VersionNotFound):
        await store.version_files(project_id, 9)


async def test_working_tree_edits(store: Store) -> None:
    project_id = await new_project(store)
    await store.write_file(project_id, "src/a.js", b"a")
    await store.write_file(project_id, "src/b.js", b"bb")
    await store.write_file(project_id, "src/a.js", b"aaa")
    assert await store.read_file(project_id, "src/a.js") == b"aaa"
    assert await store.file_sizes(project_id) == {"src/a.js": 3, "src/b.js": 2}
    assert await store.delete_file(project_id, "src")
    assert await store.files(project_id) == {}
    with pytest.raises(FileNotStored):
        await store.read_file(project_id, "src/a.js")


async def test_deleting_a_project_removes_its_rows(store: Store) -> None:
    project_id = await new_project(store)
    await store.create_run("run1", project_id, {})
    await store.append_event("run1", 1, "{}")
    await store.save_version(project_id, {"x": b"x"}, message="v")
    await store.delete_project(project_id)
    with pytest.raises(RunNotFound):
        await store.get_run("run1")
    assert await store.list_versions(project_id) == []


async def test_versions_keep_their_kind_and_projects_their_name_and_model(store: Store) -> None:
    from sandforge.projects.timeline import changes, hand_edited, timeline

    project_id = await new_project(store)
    await store.save_version(project_id, {"a.js": b"1\n2\n"}, message="run 1", run_id="run1")
    await store.save_version(project_id, {"a.js": b"1\nTWO\n"}, message="Edit a.js", kind="edit")
    await store.save_version(project_id, {"a.js": b"1\n2\n"}, message="Restore", kind="restore")
    await store.save_version(
        project_id, {"a.js": b"1\n2\n", "b.png": b"\x89PNG\xff"}, message="Edit", kind="edit"
    )
    kinds = [v.kind for v in await store.list_versions(project_id)]
    assert kinds == ["run", "edit", "restore", "edit"]
    entries = await timeline(store, project_id, [])
    assert [(c.path, c.status, c.added, c.removed) for c in entries[1].changes] == [
        ("a.js", "modified", 1, 1)
    ]
    assert [(c.path, c.added) for c in entries[3].changes] == [("b.png", 0)]  # not text
    # Every hand edit since the last run, whatever restores came between.
    assert await hand_edited(store, project_id) == ["a.js", "b.png"]
    await store.save_version(project_id, {"a.js": b"x\n"}, message="run 2", run_id="run2")
    assert await hand_edited(store, project_id) == []
    assert changes({"a": b"x"}, {"a": b"x"}) == []

    renamed = await store.update_project(project_id, name="Abacus", model="anthropic:claude-x")
    assert (renamed.name, renamed.model) == ("Abacus", "anthropic:claude-x")
    cleared = await store.update_project(project_id, model="")
    assert (cleared.name, cleared.model) == ("Abacus", None)
    with pytest.raises(ProjectNotFound):
        await store.update_project("pj-none", name="x")
