"""Viewers of the same project see a change made elsewhere appear live (the seed's /create)."""

from __future__ import annotations

from playwright.sync_api import BrowserContext, expect

from .conftest import UI_TIMEOUT_MS, Server, screenshot
from .scripted_model import DEFAULT_HEADING


def test_second_viewer_sees_the_follow_up(scripted_server: Server, context: BrowserContext) -> None:
    author = context.new_page()
    author.goto(f"{scripted_server.base_url}/create")
    author.get_by_label("Describe your app").fill("Build a counter app")
    author.get_by_role("button", name="Generate").click()
    expect(author.locator(".complete-card")).to_be_visible(timeout=UI_TIMEOUT_MS)
    project_url = author.url
    assert "?project=" in project_url

    viewer = context.new_page()
    viewer.goto(project_url)
    expect(viewer.locator(".turn")).to_have_count(1)
    viewer_frame = viewer.frame_locator("#preview-frame")
    expect(viewer_frame.locator("h1")).to_have_text(DEFAULT_HEADING, timeout=UI_TIMEOUT_MS)

    author.get_by_label("Ask for a change").fill("Change the heading to Seen Live")
    author.get_by_label("Ask for a change").press("Control+Enter")
    expect(author.locator(".complete-card")).to_have_count(2, timeout=UI_TIMEOUT_MS)

    # The viewer did nothing: the new turn and the new version arrive by themselves.
    expect(viewer.locator(".turn")).to_have_count(2, timeout=UI_TIMEOUT_MS)
    expect(viewer.locator(".turn").nth(1).locator(".msg-user")).to_have_text(
        "Change the heading to Seen Live"
    )
    expect(viewer_frame.locator("h1")).to_have_text("Seen Live", timeout=UI_TIMEOUT_MS)
    screenshot(viewer, "create-live-viewer")
