"""The project rules, on an in-memory sandbox: fast, and the same rules the API goes through."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from sandforge.config import Settings
from sandforge.errors import SandforgeError
from sandforge.projects.errors import RunInFlight
from sandforge.projects.service import Projects
from sandforge.runs.job import RunJob
from sandforge.runs.request import GenerationRequest
from sandforge.runs.storage import OrderedWriter
from sandforge.runs.supervisor import LiveRun, Supervisor
from sandforge.sandbox import SandboxSpec
from sandforge.sandbox.fleet import SandboxFleet
from sandforge.store.errors import ProjectNotFound
from sandforge.store.repo import Store
from tests.fakes.sandbox import FakeProvider


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    opened = await Store.open(None, tmp_path)
    yield opened
    await opened.close()


@pytest.fixture
def provider() -> FakeProvider:
    return FakeProvider()


@pytest.fixture
def projects(tmp_path: Path, store: Store, provider: FakeProvider) -> Projects:
    settings = Settings(data_dir=tmp_path, idle_stop_minutes=0, render_check=False)
    fleet = SandboxFleet(settings)
    fleet.add_provider(provider)
    return Projects(settings, store, fleet, Supervisor(settings, store))


async def sandbox_project(projects: Projects, provider: FakeProvider) -> tuple[str, str]:
    """A project with a live (fake) sandbox and two versions, as two turns would leave it."""
    store = projects.store
    project = await store.create_project(
        name="calc", project_type="web-app", flow="sandbox", agents=[], provider="local"
    )
    sandbox = await provider.create(SandboxSpec(labels={"project": project.id}))
    await store.set_project_sandbox(project.id, sandbox.id)
    sandbox.files = {"index.html": b"<h1>one</h1>", "old.js": b"1"}
    await store.save_version(project.id, dict(sandbox.files), message="first")
    sandbox.files = {"index.html": b"<h1>two</h1>", "new.js": b"2"}
    await store.save_version(project.id, dict(sandbox.files), message="second")
    return project.id, sandbox.id


def in_flight(projects: Projects, project_id: str) -> LiveRun:
    """Make the supervisor believe a run is changing the project."""
    request = GenerationRequest.model_validate({"messages": [{"role": "user", "content": "x"}]})
    job = RunJob(
        run_id="run0123456789abcdef",
        request=request,
        project_id=project_id,
        project_type="web-app",
        flow="sandbox",
        provider="local",
        preview_token="t",
        history=[],
    )
    run = LiveRun(job=job, provider=FakeProvider(), writer=OrderedWriter("test"))
    projects.supervisor.runs[run.id] = run
    return run


async def test_restore_puts_the_old_files_back_as_a_new_version(
    projects: Projects, provider: FakeProvider
) -> None:
    project_id, sandbox_id = await sandbox_project(projects, provider)
    sandbox = provider.sandboxes[sandbox_id]
    sandbox.processes["dev"] = "serving"  # the dev server is up: nothing to restart
    version = await projects.restore(project_id, 1)
    assert (version.number, version.message) == (3, "Restore version 1")
    assert sandbox.files == {"index.html": b"<h1>one</h1>", "old.js": b"1"}
    assert await projects.store.files(project_id) == sandbox.files
    assert any("git" in command for command in sandbox.commands)


async def test_no_restore_and_no_second_run_while_a_run_changes_the_project(
    projects: Projects, provider: FakeProvider
) -> None:
    project_id, sandbox_id = await sandbox_project(projects, provider)
    run = in_flight(projects, project_id)
    with pytest.raises(RunInFlight, match=run.id) as refused:
        await projects.restore(project_id, 1)
    assert refused.value.http_status == 409
    follow_up = GenerationRequest.model_validate(
        {"messages": [{"role": "user", "content": "again"}], "projectId": project_id}
    )
    with pytest.raises(RunInFlight):
        await projects.start_run(follow_up, "sandbox")
    assert provider.sandboxes[sandbox_id].files == {"index.html": b"<h1>two</h1>", "new.js": b"2"}
    await run.writer.aclose()


async def test_a_session_opens_from_a_project_or_its_sandbox(
    projects: Projects, provider: FakeProvider
) -> None:
    project_id, sandbox_id = await sandbox_project(projects, provider)
    by_project = await projects.session(project_id)
    by_sandbox = await projects.session(sandbox_id)
    assert by_project.kind == "project" and by_sandbox.kind == "sandbox"
    assert by_project.project == by_sandbox.project
    assert by_project.sandbox is not None and not by_project.sandbox_gone
    await provider.sandboxes[sandbox_id].delete()
    gone = await projects.session(project_id)
    assert gone.sandbox is None and gone.sandbox_gone


async def test_deleting_a_project_deletes_its_sandbox_and_records(
    projects: Projects, provider: FakeProvider
) -> None:
    project_id, sandbox_id = await sandbox_project(projects, provider)
    await projects.delete(project_id)
    assert provider.sandboxes[sandbox_id].deleted
    with pytest.raises(ProjectNotFound):
        await projects.store.get_project(project_id)


async def test_a_follow_up_racing_a_delete_finds_no_project(
    projects: Projects, provider: FakeProvider
) -> None:
    """Sent together (two tabs, or the UI and the API), the delete takes the project's lock
    first; the follow-up then gets a 404, not a run on a project deleted under it."""
    project_id, _ = await sandbox_project(projects, provider)
    follow_up = GenerationRequest.model_validate(
        {"messages": [{"role": "user", "content": "again"}], "projectId": project_id}
    )
    started, deleted = await asyncio.gather(
        projects.start_run(follow_up, "sandbox"),
        projects.delete(project_id),
        return_exceptions=True,
    )
    assert isinstance(started, ProjectNotFound), started
    assert deleted is None
    assert projects.supervisor.active_run(project_id) is None
    assert await projects.store.list_runs(project_id) == []


async def test_unknown_ids_are_not_found_errors_with_their_status(projects: Projects) -> None:
    for missing in ("pj000000000000", "run0000000000000000", "sb000000000000"):
        with pytest.raises(SandforgeError) as info:
            await projects.session(missing)
        assert info.value.http_status == 404
