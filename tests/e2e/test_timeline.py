"""The History tab: every version with its prompt, changes and screenshot; diff, restore and
undo from the timeline; a restore made elsewhere (the API) appears live."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from .conftest import UI_TIMEOUT_MS, Server, screenshot
from .scripted_model import DEFAULT_HEADING


def test_restore_and_undo_from_the_timeline(scripted_server: Server, page: Page) -> None:
    page.goto(f"{scripted_server.base_url}/create")
    page.get_by_label("Describe your app").fill("Build a counter app")
    page.get_by_role("button", name="Generate").click()
    expect(page.locator(".complete-card")).to_be_visible(timeout=UI_TIMEOUT_MS)
    follow_up = page.get_by_label("Ask for a change")
    follow_up.fill("Change the heading to Second Take")
    follow_up.press("Control+Enter")
    expect(page.locator(".complete-card")).to_have_count(2, timeout=UI_TIMEOUT_MS)
    frame = page.frame_locator("#preview-frame")
    expect(frame.locator("h1")).to_have_text("Second Take")

    page.get_by_role("tab", name="History").click()
    entries = page.locator(".tl-entry")
    expect(entries).to_have_count(2)
    newest = entries.first
    expect(newest.locator(".tl-prompt")).to_have_text("Change the heading to Second Take")
    expect(newest.locator(".tl-files li")).to_have_text(["index.html+1\u22121"])
    expect(newest).to_have_attribute("aria-current", "true")
    # The rendered check's screenshot of that run, as a thumbnail that loaded.
    shot = newest.locator("img.tl-shot")
    expect(shot).to_be_visible()
    # Visible is not loaded: the thumbnail is fetched after its element is drawn.
    page.wait_for_function(
        "img => img.complete && img.naturalWidth > 0", arg=shot.element_handle(), timeout=10_000
    )
    first = entries.nth(1)
    expect(first.locator(".tl-prompt")).to_have_text("Build a counter app")
    expect(first.locator(".tl-files li")).to_have_count(3)

    newest.get_by_role("button", name="Diff").click()
    diff = newest.locator(".tl-diff")
    expect(diff.locator(".del")).to_contain_text(f"<h1>{DEFAULT_HEADING}</h1>")
    expect(diff.locator(".add")).to_contain_text("<h1>Second Take</h1>")
    screenshot(page, "timeline-diff")

    first.get_by_role("button", name="Restore").click()
    expect(entries).to_have_count(3)
    restored = entries.first
    expect(restored.locator(".tl-kind")).to_have_text("Restore")
    expect(restored).to_have_attribute("aria-current", "true")
    expect(frame.locator("h1")).to_have_text(DEFAULT_HEADING)
    screenshot(page, "timeline-restored")

    restored.get_by_role("button", name="Undo").click()
    expect(entries).to_have_count(4)
    expect(entries.first.locator(".tl-prompt")).to_have_text("Restore version 2")
    expect(frame.locator("h1")).to_have_text("Second Take")

    # Another client restores through the API: this page shows it without a reload.
    project_id = page.url.split("project=")[1]
    with scripted_server.client() as client:
        response = client.post(f"/api/projects/{project_id}/versions/1/restore")
        assert response.status_code == 200, response.text
        assert response.json()["number"] == 5
    expect(entries).to_have_count(5)
    expect(entries.first.locator(".tl-prompt")).to_have_text("Restore version 1")
    expect(frame.locator("h1")).to_have_text(DEFAULT_HEADING)
    expect(page.locator(".toast")).to_contain_text(["Version 5 was saved in another session"])
    screenshot(page, "timeline-live-restore")
