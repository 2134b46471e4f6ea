"""A dropped stream: the page reconnects to GET /api/runs/{id}/events with Last-Event-ID."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, Request, Route, expect

from .conftest import UI_TIMEOUT_MS, Server

CUT_AFTER = 3  # events the first connection delivers before it drops


def truncated_stream(server: Server, route: Route, with_run_id: bool) -> dict[str, Any]:
    """Forward the POST to the server, but hand the page only the first events."""
    seen: dict[str, Any] = {}
    frames: list[str] = []
    body = route.request.post_data_buffer
    with (
        httpx.Client(base_url=server.api_url, timeout=120) as client,
        client.stream(
            "POST",
            "/api/agent/stream-daytona",
            content=body,
            headers={"content-type": "application/json"},
        ) as response,
    ):
        buffer = ""
        for chunk in response.iter_text():
            buffer += chunk
            while "\n\n" in buffer and len(frames) < CUT_AFTER:
                frame, buffer = buffer.split("\n\n", 1)
                frames.append(frame + "\n\n")
            if len(frames) >= CUT_AFTER:
                break
    # Closing our connection does not stop the run; find its id for the header variant.
    prompt = json.loads(body or b"{}")["messages"][-1]["content"]
    run = max((r for r in server.runs() if r["prompt"] == prompt), key=lambda r: r["createdAt"])
    seen["runId"] = run["runId"]
    headers = {"content-type": "text/event-stream", "cache-control": "no-cache"}
    if with_run_id:
        headers["x-sandforge-run-id"] = run["runId"]
    # A comment line and CRLF endings on the way, as any SSE server may send them.
    text = ": keep-alive\r\n\r\n" + "".join(frames).replace("\n", "\r\n")
    route.fulfill(status=200, headers=headers, body=text)
    return seen


@pytest.mark.parametrize("with_run_id", [True, False], ids=["run-id-header", "discovered"])
def test_dropped_stream_resumes_from_last_event_id(
    offline_server: Server, page: Page, with_run_id: bool
) -> None:
    seen: dict[str, Any] = {}
    page.route(
        "**/api/agent/stream-daytona",
        lambda route: seen.update(truncated_stream(offline_server, route, with_run_id)),
    )
    resumed: list[Request] = []
    page.on("request", lambda r: resumed.append(r) if "/events" in r.url else None)

    page.goto(f"{offline_server.base_url}/create-daytona")
    prompt = f"Create a notes app, variant {with_run_id}"
    page.get_by_label("Describe your app").fill(prompt)
    page.get_by_role("button", name="Generate").click()

    turn = page.locator(".turn").first
    expect(turn.locator(".complete-card")).to_be_visible(timeout=UI_TIMEOUT_MS)
    assert resumed, "the page reconnected"
    first = resumed[0]
    assert first.url.endswith(f"/api/runs/{seen['runId']}/events")
    assert first.headers.get("last-event-id") == str(CUT_AFTER)

    # Every event shows exactly once, in order, across both connections.
    with offline_server.client() as client:
        text = client.get(f"/api/runs/{seen['runId']}/events").text
    total = sum(1 for line in text.splitlines() if line.startswith("data:"))
    seqs = turn.locator(".runlog-list li").evaluate_all(
        "els => els.flatMap(e => { const a = +e.dataset.seq, b = +(e.dataset.lastSeq || a);"
        " return Array.from({length: b - a + 1}, (_, i) => a + i); })"
    )
    assert seqs == list(range(1, total + 1))
    expect(turn.locator(".tool-row")).to_have_count(3)
    expect(turn.locator(".conn-note")).to_be_hidden()
    expect(page.frame_locator("#preview-frame").get_by_role("heading", level=1)).to_have_text(
        "Notes App", timeout=UI_TIMEOUT_MS
    )
