"""The live preview through the HTTP API: the dev server serves the starter before the model's
first answer, and each file as it lands; follow-ups the same on the running sandbox."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from sandforge.events import PROGRESS_ORDER, Event, ProgressEvent, ToolEvent, decode_sse
from tests.conftest import LiveServer
from tests.runs.test_generation import statuses
from tests.scripted.scripted_models import LIVE_PAGE

GATED = "factory:tests.scripted.scripted_models:gated"
RUN_TIMEOUT_S = 180.0
"""A gate that never opens (the preview never showed) fails the test instead of hanging it."""


async def live_preview(server: LiveServer, event: ProgressEvent) -> httpx.Response:
    """GET the preview the event announces, with its token."""
    assert event.data.previewUrl is not None and event.data.accessToken is not None
    headers = {
        "host": urlsplit(event.data.previewUrl).netloc,
        "x-sandforge-preview-token": event.data.accessToken,
    }
    return await server.client.get("/", headers=headers)


async def gated_run(
    server: LiveServer, gates: Path, body: dict[str, Any], first_page: str
) -> list[tuple[int, Event]]:
    """Run the gated model; at each gate, check what the preview serves, then open it."""
    await asyncio.to_thread(gates.mkdir)
    events: list[tuple[int, Event]] = []
    async with (
        asyncio.timeout(RUN_TIMEOUT_S),
        server.client.stream("POST", "/api/agent/stream-daytona", json=body) as response,
    ):
        async for seq, event in decode_sse(response.aiter_lines()):
            events.append((seq, event))
            if isinstance(event, ProgressEvent) and event.data.previewUrl:
                assert event.data.status == "initializing"
                # The model still waits for its first answer: the preview serves already.
                page = await live_preview(server, event)
                assert page.status_code == 200
                assert first_page in page.text
                await asyncio.to_thread((gates / "1").touch)
            if isinstance(event, ToolEvent) and event.data.action != "read":
                # Written, and the run cannot end before the gate opens: it shows meanwhile.
                live = next(
                    e for _, e in events if isinstance(e, ProgressEvent) and e.data.previewUrl
                )
                assert isinstance(live, ProgressEvent)
                assert (await live_preview(server, live)).text == LIVE_PAGE
                await asyncio.to_thread((gates / "2").touch)
    assert len(announced(events)) == 1, events
    return events


def announced(events: list[tuple[int, Event]]) -> list[ProgressEvent]:
    """The events that announce the live preview."""
    return [e for _, e in events if isinstance(e, ProgressEvent) and e.data.previewUrl]


async def test_the_preview_is_live_from_the_starter_and_in_follow_ups(
    make_server: Any, tmp_path: Path
) -> None:
    server: LiveServer = await make_server(model=GATED)
    prompt = f"Create a live page. [gate {tmp_path / 'first'}]"
    body = {"messages": [{"role": "user", "content": prompt}], "projectType": "web-app"}
    first = await gated_run(server, tmp_path / "first", body, "<title>Live Page</title>")
    assert statuses(first) == list(PROGRESS_ORDER)
    complete = first[-1][1]
    assert complete.type == "complete", complete
    assert [(e.data.previewUrl, e.data.accessToken) for e in announced(first)] == [
        (complete.data.previewUrl, complete.data.accessToken)
    ]

    # A follow-up: the running sandbox serves the app as it was before the model answers.
    prompt = f"Change it. [gate {tmp_path / 'second'}]"
    body = {
        "messages": [{"role": "user", "content": prompt}],
        "projectId": complete.data.projectId,
    }
    second = await gated_run(server, tmp_path / "second", body, LIVE_PAGE)
    assert statuses(second) == list(PROGRESS_ORDER)
    assert second[-1][1].type == "complete"
    assert second[-1][1].data.sandboxId == complete.data.sandboxId


async def test_deleting_a_project_mid_run_cancels_the_run_and_leaves_nothing(
    make_server: Any, tmp_path: Path
) -> None:
    server: LiveServer = await make_server(model=GATED)
    never = tmp_path / "never-opened"  # the model waits for its first answer throughout
    body = {"messages": [{"role": "user", "content": f"Build a page. [gate {never}]"}]}
    started = await server.client.post("/api/runs", json=body)
    assert started.status_code == 202, started.text
    run_id, project_id = started.json()["runId"], started.json()["projectId"]
    async with asyncio.timeout(RUN_TIMEOUT_S):
        while not await _sandboxes_of(server, project_id):  # noqa: ASYNC110 (the server's state)
            await asyncio.sleep(0.1)

    # A follow-up sent with the delete: whichever takes the project first, no run starts on
    # a project that is being deleted (409: the first run still goes; 404: it is gone).
    follow_up = {"messages": [{"role": "user", "content": "More."}], "projectId": project_id}
    deleted, again = await asyncio.gather(
        server.client.delete(f"/api/projects/{project_id}"),
        server.client.post("/api/runs", json=follow_up),
    )
    assert deleted.status_code == 204, deleted.text
    assert again.status_code in (404, 409), again.text
    assert again.json()["error"]["code"] in ("project_not_found", "run_in_flight")
    assert (await server.client.get(f"/api/runs/{run_id}")).status_code == 404
    assert (await server.client.get(f"/api/projects/{project_id}")).status_code == 404
    assert await _sandboxes_of(server, project_id) == []
    runs = (await server.client.get("/api/runs")).json()["runs"]
    assert [r for r in runs if r["projectId"] == project_id] == []


async def _sandboxes_of(server: LiveServer, project_id: str) -> list[dict[str, Any]]:
    sandboxes = (await server.client.get("/api/sandboxes")).json()["sandboxes"]
    return [s for s in sandboxes if s["projectId"] == project_id]
