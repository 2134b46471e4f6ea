"""/create (the persistent flow) renders its preview; the seed's examples are one click away."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from .conftest import UI_TIMEOUT_MS, Server, screenshot


def test_create_page_renders_its_preview(offline_server: Server, page: Page) -> None:
    page.goto(f"{offline_server.base_url}/create")
    expect(page.get_by_role("link", name="Static site")).to_have_attribute("aria-current", "page")
    screenshot(page, "create-start")

    page.get_by_role("button", name="Calculator").click()
    prompt = page.get_by_label("Describe your app")
    expect(prompt).to_have_value("Create a calculator with a modern design")
    expect(prompt).to_be_focused()
    page.get_by_role("button", name="Task manager").click()
    expect(prompt).to_have_value(
        "Build a task management app with:\n- Add/edit/delete tasks\n- Mark tasks as complete\n"
        "- Filter by status\n- Dark mode toggle\n- LocalStorage persistence"
    )
    page.get_by_role("button", name="Calculator").click()

    with page.expect_request("**/api/agent/stream") as posted:
        page.get_by_role("button", name="Generate").click()
    assert posted.value.method == "POST"

    turn = page.locator(".turn").first
    # No model is configured: the offline scaffolder says so, then writes the starter.
    expect(turn.locator(".text-block").first).to_contain_text("No AI model is configured")
    expect(turn.locator(".text-block code").first).to_be_visible()
    expect(turn.locator(".tool-row .tool-file")).to_have_text(
        ["index.html", "styles.css", "app.js"]
    )
    expect(turn.locator(".complete-card")).to_be_visible(timeout=UI_TIMEOUT_MS)
    frame = page.frame_locator("#preview-frame")
    expect(frame.get_by_role("heading", level=1)).to_have_text("Calculator", timeout=UI_TIMEOUT_MS)
    expect(frame.locator(".description")).to_have_text("Create a calculator with a modern design")
    expect(page.locator("#preview-status")).to_have_text("ready")
    expect(page.get_by_role("heading", level=2, name="Calculator")).to_be_visible()
    screenshot(page, "create-session")
