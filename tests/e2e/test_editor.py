"""The Code tab is an editor: a saved edit reaches the sandbox (the preview shows it), becomes a
version marked as a manual edit, and the next model request names the file the user changed."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from tests.fakes.model_apis import FakeAnthropic

from .conftest import UI_TIMEOUT_MS, Server, screenshot
from .scripted_model import DEFAULT_HEADING
from .wire_model import prompt_text


def test_an_edit_saved_in_the_editor_reaches_the_preview_and_the_model(
    wire_server: Server, anthropic_fake: FakeAnthropic, page: Page
) -> None:
    page.goto(f"{wire_server.base_url}/create-daytona")
    page.get_by_label("Describe your app").fill("Build a counter app")
    page.get_by_role("button", name="Generate").click()
    expect(page.locator(".complete-card")).to_be_visible(timeout=UI_TIMEOUT_MS)
    frame = page.frame_locator("#preview-frame")
    expect(frame.locator("h1")).to_have_text(DEFAULT_HEADING)

    page.get_by_role("tab", name="Code").click()
    heading_line = page.locator("#code-scroll .cm-content .cm-line", has_text=DEFAULT_HEADING)
    expect(heading_line).to_be_visible()
    # Highlighted by the editor's HTML mode: the tag names are styled spans.
    expect(heading_line.locator("span").first).to_be_visible()
    save = page.locator("#save-code")
    expect(save).to_be_disabled()

    # Replace the word "model" at the end of the heading, as a user would with the keyboard.
    heading_line.click()
    page.keyboard.press("End")
    for _ in range(len("</h1>")):
        page.keyboard.press("ArrowLeft")
    page.keyboard.press("Control+Shift+ArrowLeft")
    page.keyboard.type("masterpiece")
    expect(page.locator("#code-dirty")).to_be_visible()
    expect(save).to_be_enabled()
    screenshot(page, "editor-unsaved")
    page.keyboard.press("Control+s")
    expect(page.locator(".toast")).to_contain_text(["Saved index.html as version 2"])
    expect(page.locator("#code-dirty")).to_be_hidden()

    page.get_by_role("tab", name="Preview").click()
    expect(frame.locator("h1")).to_have_text("Forged by the scripted masterpiece")
    page.get_by_role("tab", name="History").click()
    newest = page.locator(".tl-entry").first
    expect(newest.locator(".tl-kind")).to_have_text("Edited by hand")
    expect(newest.locator(".tl-files li")).to_have_text(["index.html+1\u22121"])
    screenshot(page, "editor-saved-history")

    sent = len(anthropic_fake.requests)
    follow_up = page.get_by_label("Ask for a change")
    follow_up.fill("Make the button bigger")
    follow_up.press("Control+Enter")
    expect(page.locator(".complete-card")).to_have_count(2, timeout=UI_TIMEOUT_MS)
    prompt = prompt_text(anthropic_fake.requests[sent].json)
    assert prompt.startswith("Make the button bigger")
    assert "the user edited these files by hand: index.html." in prompt

    # Told once: the run after that one hears nothing of it.
    sent = len(anthropic_fake.requests)
    follow_up.fill("Change the heading to Third")
    follow_up.press("Control+Enter")
    expect(page.locator(".complete-card")).to_have_count(3, timeout=UI_TIMEOUT_MS)
    assert "by hand" not in prompt_text(anthropic_fake.requests[sent].json)
