"""Failed and stopped runs: the error, what to do next, and a way to try again."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from .conftest import UI_TIMEOUT_MS, Server, request_json, screenshot
from .scripted_model import BREAK_MARK, HANG_MARK


def test_failed_run_explains_what_to_do_next(scripted_server: Server, page: Page) -> None:
    page.goto(f"{scripted_server.base_url}/create-daytona")
    page.get_by_label("Describe your app").fill(f"Build a page {BREAK_MARK}")
    page.get_by_role("button", name="Generate").click()

    turn = page.locator(".turn").first
    card = turn.locator(".error-card")
    expect(card).to_be_visible(timeout=UI_TIMEOUT_MS)
    expect(card).to_have_attribute("role", "alert")
    expect(card).to_have_attribute("data-code", "missing_entry_file")
    expect(card.locator(".error-message")).to_contain_text("finished without index.html")
    expect(card.locator(".next-steps li")).to_contain_text(["ask for index.html explicitly"])
    expect(turn.locator(".tool-row")).to_have_attribute("data-action", "delete")
    expect(turn.locator('.step[data-state="failed"]')).to_have_count(1)
    expect(page.locator("#run-badge")).to_have_text("failed")
    screenshot(page, "create-daytona-failed")

    # "Try again" sends the prompt once more as a follow-up turn.
    with page.expect_request("**/api/agent/stream-daytona") as posted:
        card.get_by_role("button", name="Try again").click()
    assert request_json(posted.value)["messages"][-1]["content"] == f"Build a page {BREAK_MARK}"
    expect(page.locator(".turn")).to_have_count(2)
    expect(page.locator(".turn").nth(1).locator(".error-card")).to_be_visible()


def test_stop_run(scripted_server: Server, page: Page) -> None:
    page.goto(f"{scripted_server.base_url}/create-daytona")
    page.get_by_label("Describe your app").fill(f"Build a page {HANG_MARK}")
    page.get_by_role("button", name="Generate").click()
    turn = page.locator(".turn").first
    expect(turn.locator(".text-block")).to_contain_text("Thinking about it")
    expect(page.locator("#followup-note")).to_be_visible()
    page.get_by_role("button", name="Stop run").click()
    card = turn.locator(".error-card")
    expect(card).to_be_visible(timeout=UI_TIMEOUT_MS)
    expect(card).to_have_attribute("data-code", "cancelled")
    expect(card).to_contain_text("The run was stopped")
    expect(page.locator("#run-badge")).to_have_text("cancelled")
    expect(page.get_by_role("button", name="Stop run")).to_be_hidden()
    expect(page.get_by_role("button", name="Send")).to_be_enabled()
