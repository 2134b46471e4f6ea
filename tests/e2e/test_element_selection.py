"""Pointing at an element of the app: a toggle in the preview panel, a click in the app, a
removable chip, and the element's selector, text and source line in the model's next prompt.
The inspector exists only in the editor's own frame, never behind a share link."""

from __future__ import annotations

from playwright.sync_api import Browser, Page, expect

from tests.fakes.model_apis import FakeAnthropic

from .conftest import UI_TIMEOUT_MS, ConsoleErrors, Server, new_context, screenshot
from .scripted_model import DEFAULT_HEADING
from .wire_model import prompt_text


def test_a_selected_elements_selector_reaches_the_models_next_prompt(
    wire_server: Server,
    anthropic_fake: FakeAnthropic,
    page: Page,
    browser: Browser,
    console_errors: ConsoleErrors,
) -> None:
    page.goto(f"{wire_server.base_url}/create")
    page.get_by_label("Describe your app").fill("Build a counter app")
    page.get_by_role("button", name="Generate").click()
    expect(page.locator(".complete-card")).to_be_visible(timeout=UI_TIMEOUT_MS)
    frame = page.frame_locator("#preview-frame")
    expect(frame.locator("h1")).to_have_text(DEFAULT_HEADING)
    expect(frame.locator("script[src='/.sandforge/frame/inspector.js']")).to_have_count(1)

    toggle = page.get_by_role("button", name="Select element")
    toggle.click()
    expect(toggle).to_have_attribute("aria-pressed", "true")
    frame.locator("h1").click()
    chips = page.locator("#followup-attachments .element-chip")
    expect(chips).to_have_count(1)
    expect(chips.first.locator(".attach-name")).to_have_text(
        f"h1 · “{DEFAULT_HEADING}” · index.html:11"
    )
    # One pick per toggle: the app works as usual again.
    expect(toggle).to_have_attribute("aria-pressed", "false")
    screenshot(page, "element-picked")

    # A second pick, removed again before sending.
    toggle.click()
    frame.get_by_role("button", name="Add one").click()
    expect(chips).to_have_count(2)
    page.get_by_role("button", name="Remove button · “Add one” · index.html:13").click()
    expect(chips).to_have_count(1)
    expect(frame.locator("#count")).to_have_text("0")  # the pick did not click the app's button

    sent = len(anthropic_fake.requests)
    follow_up = page.get_by_label("Ask for a change")
    follow_up.fill("Make this bigger")
    follow_up.press("Control+Enter")
    expect(page.locator(".complete-card")).to_have_count(2, timeout=UI_TIMEOUT_MS)
    prompt = prompt_text(anthropic_fake.requests[sent].json)
    assert prompt.startswith("Make this bigger")
    assert f'- `body > main > h1` showing "{DEFAULT_HEADING}" in index.html line 11' in prompt, (
        prompt
    )
    assert "Add one" not in prompt
    expect(page.locator(".turn").nth(1).locator(".msg-elements .element-chip")).to_have_count(1)
    expect(chips).to_have_count(0)

    # Behind a share link the app's pages are untouched.
    project_id = page.url.split("project=")[1]
    with wire_server.client() as client:
        share = client.post(f"/api/projects/{project_id}/shares", json={}).json()["url"]
    viewer_context = new_context(browser, console_errors)
    try:
        viewer = viewer_context.new_page()
        viewer.goto(share)
        expect(viewer.locator("h1")).to_have_text(DEFAULT_HEADING)
        expect(viewer.locator("script[src*='/.sandforge/']")).to_have_count(0)
    finally:
        viewer_context.close()
