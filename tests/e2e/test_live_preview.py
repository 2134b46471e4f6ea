"""The live preview: the app shows from the first seconds of a run and changes as files land.

The scripted model waits at gates between its turns ("[gate <dir>]"), so each test sees
what the preview shows while the model is still working, then lets it go on.
"""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import FrameLocator, Page, expect

from .conftest import Server
from .scripted_model import DEFAULT_HEADING, REACT_HEADING, REACT_MARK
from .test_create_daytona import STATUSES, server_events


def start_run(page: Page, server: Server, prompt: str, project_type: str = "web-app") -> None:
    page.goto(f"{server.base_url}/create-daytona")
    page.get_by_label("Describe your app").fill(prompt)
    page.locator("#projectType").select_option(project_type)
    with page.expect_request("**/api/agent/stream-daytona"):
        page.get_by_role("button", name="Generate").click()


def open_gate(gates: Path, number: int) -> None:
    (gates / str(number)).touch()


def finish(page: Page, server: Server, gates: Path) -> None:
    """Let the model finish; the run completes and its statuses keep the seed's order."""
    open_gate(gates, 2)
    expect(page.locator(".turn").first.locator(".complete-card")).to_be_visible()
    project_id = page.evaluate("new URLSearchParams(location.search).get('project')")
    runs = [r for r in server.runs() if r.get("projectId") == project_id]
    events = server_events(server, runs[0]["runId"])
    statuses = [e["data"]["status"] for e in events if e["type"] == "progress"]
    ranks = [STATUSES.index(s) for s in statuses]
    assert ranks == sorted(ranks), statuses
    assert set(statuses) == set(STATUSES), statuses
    live = [e for e in events if e["type"] == "progress" and e["data"].get("previewUrl")]
    assert [e["data"]["status"] for e in live] == ["initializing"]
    assert live[0]["data"]["accessToken"], live[0]


def test_a_static_app_shows_the_starter_then_each_write_before_the_run_ends(
    scripted_server: Server, page: Page, tmp_path: Path
) -> None:
    gates = tmp_path / "gates"
    gates.mkdir()
    start_run(page, scripted_server, f"Build a live counter. [gate {gates}]")
    frame: FrameLocator = page.frame_locator("#preview-frame")

    # The starter, while the model's first request still waits at its gate.
    expect(frame.locator("h1")).to_have_text("Live Counter")
    expect(page.locator("#preview-status")).to_have_text("updating")
    expect(page.locator("#preview-overlay")).to_be_hidden()
    assert not (gates / "1").exists()
    # The editor's frame has the reload helper; it asked for it with the marker, once.
    assert frame.locator("html").evaluate("() => window.__sandforgeReload") is True
    assert "sandforge-frame" not in frame.locator("html").evaluate("() => location.href")

    # The model writes; its page shows while its next request waits: the run cannot end yet.
    open_gate(gates, 1)
    expect(frame.locator("h1")).to_have_text(DEFAULT_HEADING)
    expect(frame.locator("#count")).to_have_text("0")  # app.js, written last, ran too
    expect(page.locator(".turn").first.locator(".complete-card")).to_have_count(0)
    expect(page.locator("#preview-status")).to_have_text("updating")

    finish(page, scripted_server, gates)
    expect(page.locator("#preview-status")).to_have_text("ready")
    expect(frame.locator("h1")).to_have_text(DEFAULT_HEADING)


def test_a_vite_app_updates_in_place_without_a_reload(
    scripted_server: Server, page: Page, tmp_path: Path
) -> None:
    gates = tmp_path / "gates"
    gates.mkdir()
    start_run(
        page, scripted_server, f"Build a live todo list. {REACT_MARK} [gate {gates}]", "react"
    )
    frame = page.frame_locator("#preview-frame")

    expect(frame.locator("h1")).to_have_text("Live Todo List")
    expect(page.locator("#preview-status")).to_have_text("updating")
    document = frame.locator("html")
    document.evaluate("() => { window.__sameDocument = true; }")
    # Vite's HMR updates the page: no reload helper is injected for it.
    assert document.evaluate("() => window.__sandforgeReload") is None

    open_gate(gates, 1)
    expect(frame.locator("h1")).to_have_text(REACT_HEADING)
    assert document.evaluate("() => window.__sameDocument") is True
    expect(page.locator(".turn").first.locator(".complete-card")).to_have_count(0)

    finish(page, scripted_server, gates)
    expect(frame.locator("h1")).to_have_text(REACT_HEADING)
