"""Projects that persist: follow-ups, versions, restore, diff, rebuilds, restarts, viewers."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from sandforge.events import CompleteEvent, Event, decode_sse
from sandforge.store.repo import Store
from tests.conftest import LiveServer
from tests.dbs import database
from tests.scripted.scripted_models import COUNTER_HTML

REMEMBERS = "factory:tests.scripted.scripted_models:remembers"


def ask(prompt: str, **extra: Any) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": prompt}], **extra}


async def complete_of(server: LiveServer, body: dict[str, Any]) -> CompleteEvent:
    events = await server.stream("/api/agent/stream-daytona", body)
    last = events[-1][1]
    assert isinstance(last, CompleteEvent), last
    return last


@pytest.fixture(params=["sqlite", "postgres"])
async def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    async with database(request.param, tmp_path) as url:
        yield url


async def test_follow_up_continues_in_the_same_sandbox_with_the_history(
    make_server: Any, db_url: str
) -> None:
    server: LiveServer = await make_server(model=REMEMBERS, database_url=db_url)
    first = await complete_of(server, ask("Create a counter"))
    # The scripted model raises unless the follow-up carries the first turn.
    second = await complete_of(server, ask("Make it red", projectId=first.data.projectId))
    assert second.data.sandboxId == first.data.sandboxId
    assert second.data.previewUrl == first.data.previewUrl
    assert (first.data.version, second.data.version) == (1, 2)

    css = await server.preview_get(second.data.projectId, "/styles.css", first.data.accessToken)
    assert css.text == "body { background: red; }\n"
    project = (await server.client.get(f"/api/projects/{first.data.projectId}")).json()
    assert project["messages"] == [
        {"role": "user", "content": "Create a counter"},
        {"role": "assistant", "content": "Built the counter."},
        {"role": "user", "content": "Make it red"},
        {"role": "assistant", "content": "It is red now."},
    ]


async def test_versions_restore_and_diff(make_server: Any) -> None:
    server: LiveServer = await make_server(model=REMEMBERS)
    first = await complete_of(server, ask("Create a counter"))
    project_id = first.data.projectId
    await complete_of(server, ask("Make it red", projectId=project_id))

    versions = (await server.client.get(f"/api/projects/{project_id}/versions")).json()["versions"]
    assert [(v["number"], v["message"]) for v in versions] == [
        (1, "Create a counter"),
        (2, "Make it red"),
    ]
    assert all(len(v["commit"]) == 40 for v in versions)

    restored = await server.client.post(f"/api/projects/{project_id}/versions/1/restore")
    assert restored.json()["number"] == 3
    css = await server.preview_get(project_id, "/styles.css", first.data.accessToken)
    assert css.text == "body { background: white; }\n"

    diff = (await server.client.get(f"/api/projects/{project_id}/diff?from=2&to=3")).json()
    assert [(f["path"], f["status"]) for f in diff["files"]] == [("styles.css", "modified")]
    assert "-body { background: red; }" in diff["files"][0]["diff"]
    assert "+body { background: white; }" in diff["files"][0]["diff"]
    same = (await server.client.get(f"/api/projects/{project_id}/diff?from=1&to=3")).json()
    assert same["files"] == []
    # The sandbox's own history has the restore as a new commit too.
    sandbox = await server.services.fleet.find(first.data.sandboxId)
    log = await sandbox.exec("git log --format=%s")
    assert log.stdout.splitlines() == ["Restore version 1", "Make it red", "Create a counter"]
    missing = await server.client.post(f"/api/projects/{project_id}/versions/9/restore")
    assert missing.status_code == 404


async def test_preview_rebuilds_a_deleted_sandbox_at_the_same_url(server: LiveServer) -> None:
    first = await complete_of(server, ask("Create a weather dashboard"))
    project_id, token = first.data.projectId, first.data.accessToken
    before = await server.preview_get(project_id, token=token)
    status = (await server.client.get(f"/api/projects/{project_id}/preview")).json()
    assert status["status"] == "ready" and status["sandboxId"] == first.data.sandboxId
    assert (await server.client.delete(f"/api/sandboxes/{first.data.sandboxId}")).status_code == 204
    assert server.sandbox_dirs() == []
    gone = (await server.client.get(f"/api/projects/{project_id}/preview")).json()
    assert gone["status"] == "stopped" and gone["url"] == first.data.previewUrl

    after = await server.preview_get(project_id, token=token)
    assert after.status_code == 200
    assert after.text == before.text
    project = (await server.client.get(f"/api/projects/{project_id}")).json()
    assert project["sandboxId"] not in (None, first.data.sandboxId)
    assert server.sandbox_dirs() == [project["sandboxId"]]


async def test_follow_up_after_the_sandbox_is_gone_rebuilds_from_stored_files(
    make_server: Any,
) -> None:
    server: LiveServer = await make_server(model=REMEMBERS)
    first = await complete_of(server, ask("Create a counter"))
    await server.client.delete(f"/api/sandboxes/{first.data.sandboxId}")
    events = await server.stream(
        "/api/agent/stream-daytona", ask("Make it red", projectId=first.data.projectId)
    )
    assert any("rebuilding it from" in e.data.message for _, e in events if e.type == "progress")
    second = events[-1][1]
    assert isinstance(second, CompleteEvent)
    assert second.data.sandboxId != first.data.sandboxId
    page = await server.preview_get(second.data.projectId, token=second.data.accessToken)
    assert page.text == COUNTER_HTML


async def test_stopped_project_sandbox_is_started_when_its_preview_opens(
    server: LiveServer,
) -> None:
    first = await complete_of(server, ask("Build a timer"))
    await server.client.post(f"/api/sandboxes/{first.data.sandboxId}/stop")
    page = await server.preview_get(first.data.projectId, token=first.data.accessToken)
    assert page.status_code == 200 and "<h1>Timer</h1>" in page.text


async def test_disconnect_and_resume_gets_exactly_the_missing_events(server: LiveServer) -> None:
    created = await server.client.post("/api/runs", json=ask("Create a calculator"))
    run_id = created.json()["runId"]
    seen: list[int] = []
    async with server.client.stream("GET", f"/api/runs/{run_id}/events") as response:
        async for seq, _ in decode_sse(response.aiter_lines()):
            seen.append(seq)
            if len(seen) == 3:
                break
    async with server.client.stream(
        "GET", f"/api/runs/{run_id}/events", headers={"last-event-id": str(seen[-1])}
    ) as response:
        seen += [seq async for seq, _ in decode_sse(response.aiter_lines())]
    total = (await server.client.get(f"/api/runs/{run_id}")).json()["events"]
    assert seen == list(range(1, total + 1))


async def test_a_server_stopped_mid_run_marks_it_interrupted_and_keeps_its_events(
    make_server: Any, settings: Any
) -> None:
    hanging: LiveServer = await make_server(model="factory:tests.scripted.scripted_models:hangs")
    run_id = (await hanging.client.post("/api/runs", json=ask("Create a calculator"))).json()[
        "runId"
    ]
    run = hanging.services.supervisor.runs[run_id]
    async for _, event in run.log.follow():
        if event.type == "message":
            break
    stored_before = len(run.log.events)
    await hanging.services.close()

    restarted: LiveServer = await make_server()
    record = (await restarted.client.get(f"/api/runs/{run_id}")).json()
    assert record["state"] == "interrupted"
    async with restarted.client.stream("GET", f"/api/runs/{run_id}/events") as response:
        events = [e async for _, e in decode_sse(response.aiter_lines())]
    assert len(events) == stored_before + 1
    assert events[-1].type == "error" and events[-1].data.code == "interrupted"
    assert [e.type for e in events[:stored_before]] == [
        e.type for e in run.log.events[:stored_before]
    ]


async def test_runs_left_running_by_a_crash_are_interrupted_at_start_up(
    make_server: Any, settings: Any
) -> None:
    store = await Store.open(None, settings.data_dir)
    project = await store.create_project(
        name="x", project_type="web-app", flow="sandbox", agents=[], provider="local"
    )
    await store.create_run("runcrashed", project.id, {"messages": []})
    await store.append_event(
        "runcrashed", 1, '{"type":"progress","data":{"status":"creating","message":"..."}}'
    )
    await store.close()

    server: LiveServer = await make_server()
    record = (await server.client.get("/api/runs/runcrashed")).json()
    assert record["state"] == "interrupted" and record["events"] == 2


async def test_persistent_flow_serves_stored_files_with_no_sandbox(server: LiveServer) -> None:
    events = await server.stream("/api/agent/stream", ask("Create a todo app with dark mode"))
    complete = events[-1][1]
    assert isinstance(complete, CompleteEvent)
    assert complete.data.sandboxId == ""
    assert server.sandbox_dirs() == []
    page = await server.preview_get(complete.data.projectId, token=complete.data.accessToken)
    assert page.status_code == 200
    assert "<h1>Todo App</h1>" in page.text
    css = await server.preview_get(
        complete.data.projectId, "/styles.css", complete.data.accessToken
    )
    assert css.headers["content-type"].startswith("text/css")
    files = (await server.client.get(f"/api/projects/{complete.data.projectId}/files")).json()
    assert [f["path"] for f in files["files"]] == ["app.js", "index.html", "styles.css"]


async def test_two_live_viewers_both_get_the_file_changes(make_server: Any) -> None:
    server: LiveServer = await make_server(model=REMEMBERS)
    first = await complete_of(server, ask("Create a counter"))
    project_id = first.data.projectId

    async def view(ready: asyncio.Event) -> list[Event]:
        got: list[Event] = []
        async with server.client.stream("GET", f"/api/projects/{project_id}/events") as response:
            lines = response.aiter_lines()
            assert (await anext(lines)).startswith(": ")  # subscribed
            ready.set()
            data: list[str] = []
            async for line in lines:
                if line.startswith("data:"):
                    data.append(line[5:].strip())
                elif line == "" and data:
                    from sandforge.events import from_json

                    got.append(from_json("\n".join(data)))
                    data = []
                    if got[-1].type in ("complete", "error"):
                        return got
        return got

    ready = [asyncio.Event(), asyncio.Event()]
    viewers = [asyncio.create_task(view(r)) for r in ready]
    await asyncio.gather(*(r.wait() for r in ready))
    await complete_of(server, ask("Make it red", projectId=project_id))
    for seen in await asyncio.gather(*viewers):
        assert ("update", "styles.css") in [
            (e.data.action, e.data.file) for e in seen if e.type == "tool"
        ]
        assert seen[-1].type == "complete"


async def test_unknown_project_follow_up_is_a_404(server: LiveServer) -> None:
    response = await server.client.post("/api/runs", json=ask("hi", projectId="pj000000000000"))
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "project_not_found"


async def test_finished_runs_leave_memory_and_replay_from_the_store(
    server: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sandforge.runs import supervisor

    monkeypatch.setattr(supervisor, "FINISHED_RUN_MEMORY_S", 0.0)
    events = await server.stream("/api/agent/stream-daytona", ask("Build a timer"))
    run_id = events[-1][1].data.runId
    for _ in range(500):
        if run_id not in server.services.supervisor.runs:
            break
        await asyncio.sleep(0.01)
    assert run_id not in server.services.supervisor.runs
    async with server.client.stream(
        "GET", f"/api/runs/{run_id}/events", headers={"last-event-id": "2"}
    ) as response:
        replayed = [(seq, e) async for seq, e in decode_sse(response.aiter_lines())]
    assert replayed == events[2:]


async def test_one_get_reopens_a_session_from_any_of_its_ids(make_server: Any) -> None:
    server: LiveServer = await make_server(model=REMEMBERS)
    first = await complete_of(server, ask("Create a counter"))
    data = first.data
    by_kind = {}
    for any_id in (data.projectId, data.runId, data.sandboxId):
        response = await server.client.get(f"/api/sessions/{any_id}")
        assert response.status_code == 200, response.text
        by_kind[response.json()["kind"]] = response.json()
    assert sorted(by_kind) == ["project", "run", "sandbox"]
    session = by_kind["project"]
    assert session["project"]["id"] == data.projectId and session["project"]["kind"] == "project"
    assert [m["role"] for m in session["project"]["messages"]] == ["user", "assistant"]
    assert [(r["runId"], r["state"], r["kind"]) for r in session["runs"]] == [
        (data.runId, "succeeded", "run")
    ]
    assert session["sandbox"]["id"] == data.sandboxId and not session["sandboxGone"]

    await server.client.delete(f"/api/sandboxes/{data.sandboxId}")
    gone = (await server.client.get(f"/api/sessions/{data.projectId}")).json()
    assert gone["sandbox"] is None and gone["sandboxGone"]
    missing = await server.client.get("/api/sessions/pj000000000000")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "project_not_found"
