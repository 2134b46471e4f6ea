"""Whole generations through the HTTP API: real workers, real sandboxes, real preview proxy."""

from __future__ import annotations

import asyncio
import os
import signal
from typing import Any

import pytest

from sandforge.events import PROGRESS_ORDER, CompleteEvent, Event, ToolEvent, decode_sse
from sandforge.templates import WEB_APP
from tests.conftest import LiveServer
from tests.scripted.scripted_models import CALCULATOR_CSS, CALCULATOR_HTML, CALCULATOR_JS

CALCULATOR = {
    "messages": [{"role": "user", "content": "Create a calculator with a modern design"}],
    "projectType": "web-app",
    "agents": ["frontend-dev", "ui-designer"],
    "projectName": "calc",
}


def statuses(events: list[tuple[int, Event]]) -> list[str]:
    """The progress statuses in order; a status may repeat with a new message."""
    seen: list[str] = []
    for _, e in events:
        if e.type == "progress" and (not seen or seen[-1] != e.data.status):
            seen.append(e.data.status)
    return seen


def tools(events: list[tuple[int, Event]]) -> list[tuple[str, str, int | None]]:
    return [
        (e.data.action, e.data.file, e.data.linesAdded)
        for _, e in events
        if isinstance(e, ToolEvent)
    ]


def bwrap_pids_under(directory: str) -> list[int]:
    """Processes whose command line mentions `directory` (a sandbox's bwrap)."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if directory.encode() in f.read():
                    found.append(int(pid))
        except OSError:
            continue
    return found


async def test_scripted_model_builds_and_serves_an_app(make_server: Any) -> None:
    server: LiveServer = await make_server(
        model="factory:tests.scripted.scripted_models:calculator"
    )
    events = await server.stream("/api/agent/stream-daytona", CALCULATOR)

    assert [seq for seq, _ in events] == list(range(1, len(events) + 1))
    assert statuses(events) == list(PROGRESS_ORDER)
    # Assistant text arrives as streamed deltas, in order, between the progress steps.
    deltas = [e.data.content for _, e in events if e.type == "message"]
    assert all(e.data.delta for _, e in events if e.type == "message")
    assert "".join(deltas) == (
        "I'll build a calculator.Writing the files now.Done: your calculator is ready."
    )
    assert tools(events) == [
        ("read", "index.html", None),
        ("update", "index.html", 5),
        ("update", "styles.css", len(CALCULATOR_CSS.splitlines())),
        ("create", "calc/engine.js", 1),
        ("update", "app.js", len(CALCULATOR_JS.splitlines())),
        ("run", "ls calc", None),
    ]
    run_event = next(e for _, e in events if isinstance(e, ToolEvent) and e.data.action == "run")
    assert run_event.data.exitCode == 0

    complete = events[-1][1]
    assert isinstance(complete, CompleteEvent)
    data = complete.data
    assert data.success and data.projectDir == "/workspace" and data.accessToken
    # The URL is the project's, stable across sandboxes; the sandbox id is reported too.
    assert data.projectId is not None and data.sandboxId.startswith("sb")
    assert data.previewUrl == f"http://3000-{data.projectId}.localhost:{server.settings.port}/"
    assert data.version == 1
    assert data.tokensUsed > 0
    assert data.runId is not None

    page = await server.preview_get(data.projectId, "/", token=data.accessToken)
    assert page.status_code == 200
    assert page.text == CALCULATOR_HTML
    engine = await server.preview_get(data.projectId, "/calc/engine.js", token=data.accessToken)
    assert engine.text == "export const add = (a, b) => a + b;\n"


async def test_offline_scaffolder_says_so_and_serves_the_prompts_page(server: LiveServer) -> None:
    events = await server.stream(
        "/api/agent/stream-daytona",
        {"messages": [{"role": "user", "content": "Create a calculator with a modern design"}]},
    )
    assert statuses(events) == list(PROGRESS_ORDER)
    first_message = next(e for _, e in events if e.type == "message")
    assert "No AI model is configured" in first_message.data.content
    assert "ANTHROPIC_API_KEY" in first_message.data.content
    assert [(a, f) for a, f, _ in tools(events)] == [
        ("create", name) for name in WEB_APP.starter_files
    ]
    complete = events[-1][1]
    assert isinstance(complete, CompleteEvent)
    assert complete.data.tokensUsed == 0
    page = await server.preview_get(complete.data.projectId, token=complete.data.accessToken)
    assert page.status_code == 200
    assert "<title>Calculator</title>" in page.text
    assert "<h1>Calculator</h1>" in page.text
    assert "Create a calculator with a modern design" in page.text


async def test_a_run_that_leaves_no_entry_file_fails_and_cleans_up(make_server: Any) -> None:
    server: LiveServer = await make_server(
        model="factory:tests.scripted.scripted_models:writes_nothing"
    )
    events = await server.stream("/api/agent/stream-daytona", CALCULATOR)
    last = events[-1][1]
    assert last.type == "error"
    assert "without index.html" in last.data.message
    assert server.sandbox_dirs() == []


async def test_keep_on_error_keeps_the_sandbox(make_server: Any) -> None:
    server: LiveServer = await make_server(
        model="factory:tests.scripted.scripted_models:writes_nothing", keep_on_error=True
    )
    events = await server.stream("/api/agent/stream-daytona", CALCULATOR)
    last = events[-1][1]
    assert last.type == "error" and last.data.sandboxId
    assert server.sandbox_dirs() == [last.data.sandboxId]


async def test_a_killed_worker_becomes_the_seeds_error_and_its_sandbox_goes(
    make_server: Any,
) -> None:
    server: LiveServer = await make_server(model="factory:tests.scripted.scripted_models:hangs")
    response = await server.client.post("/api/runs", json=CALCULATOR)
    assert response.status_code == 202
    run_id = response.json()["runId"]
    run = server.services.supervisor.runs[run_id]

    seen: list[Event] = []
    async for _, event in run.log.follow():
        seen.append(event)
        if event.type == "message":
            break
    sandbox_id = run.sandbox_id
    assert sandbox_id is not None and server.sandbox_dirs() == [sandbox_id]
    assert run.process is not None
    os.kill(run.process.pid, signal.SIGKILL)

    final = [event async for _, event in run.log.follow(len(seen))][-1]
    assert final.type == "error"
    assert final.data.message == "Generation process exited with code -9"
    assert server.sandbox_dirs() == []
    assert bwrap_pids_under(str(server.sandboxes_dir / sandbox_id)) == []


async def test_cancel_stops_the_run_and_cleans_up(make_server: Any) -> None:
    server: LiveServer = await make_server(model="factory:tests.scripted.scripted_models:hangs")
    run_id = (await server.client.post("/api/runs", json=CALCULATOR)).json()["runId"]
    run = server.services.supervisor.runs[run_id]
    async for _, event in run.log.follow():
        if event.type == "message":
            break
    cancelled = await server.client.post(f"/api/runs/{run_id}/cancel")
    assert cancelled.status_code == 200
    final = [event async for _, event in run.log.follow()][-1]
    assert final.type == "error" and final.data.code == "cancelled"
    assert (await server.client.get(f"/api/runs/{run_id}")).json()["state"] == "cancelled"
    assert server.sandbox_dirs() == []


async def test_a_client_that_disconnects_does_not_stop_the_run(server: LiveServer) -> None:
    async with server.client.stream(
        "POST",
        "/api/agent/stream-daytona",
        json={"messages": [{"role": "user", "content": "Make a clock"}]},
    ) as response:
        async for line in response.aiter_lines():
            if line.startswith("data:"):
                break
    runs = (await server.client.get("/api/runs")).json()["runs"]
    assert len(runs) == 1
    run = server.services.supervisor.runs[runs[0]["runId"]]
    events = [event async for _, event in run.log.follow()]
    assert events[-1].type == "complete"


@pytest.mark.parametrize("after", [0, 3])
async def test_run_events_replay_from_last_event_id(server: LiveServer, after: int) -> None:
    run_id = (
        await server.client.post(
            "/api/runs", json={"messages": [{"role": "user", "content": "Make a clock"}]}
        )
    ).json()["runId"]
    async with server.client.stream(
        "GET", f"/api/runs/{run_id}/events", headers={"last-event-id": str(after)}
    ) as response:
        seqs = [seq async for seq, _ in decode_sse(response.aiter_lines())]
    assert seqs == list(range(after + 1, seqs[-1] + 1))
    # The stream ended because the run did, with nothing missed.
    assert (await server.client.get(f"/api/runs/{run_id}")).json()["events"] == seqs[-1]


async def test_two_runs_at_once_both_serve_on_port_3000(server: LiveServer) -> None:
    async def one(prompt: str) -> CompleteEvent:
        events = await server.stream(
            "/api/agent/stream-daytona", {"messages": [{"role": "user", "content": prompt}]}
        )
        last = events[-1][1]
        assert isinstance(last, CompleteEvent), last
        return last

    first, second = await asyncio.gather(one("Create a weather dashboard"), one("Build a timer"))
    assert first.data.sandboxId != second.data.sandboxId
    a = await server.preview_get(first.data.projectId, token=first.data.accessToken)
    b = await server.preview_get(second.data.projectId, token=second.data.accessToken)
    assert "<h1>Weather Dashboard</h1>" in a.text
    assert "<h1>Timer</h1>" in b.text
