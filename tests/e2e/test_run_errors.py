"""Failed and stopped runs: the error, what to do next, and a way to try again."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from .conftest import UI_TIMEOUT_MS, Server, request_json, screenshot
from .scripted_model import BREAK_MARK, HANG_MARK

# Every error code a run can end with, as the server names them (see errors.py and runs/).
ERROR_CODES = [
    "worker_exited",
    "interrupted",
    "internal",
    "save_failed",
    "dev_server_failed",
    "missing_entry_file",
    "lost_run",
    "run_not_found",
    "model_error",
    "model_auth",
    "model_connection",
    "model_timeout",
    "model_rate_limited",
    "sandbox_error",
    "disk_full",
    "insufficient_storage",
    "limit_reached",
    "budget_reached",
]
TROUBLESHOOT = """async (errors) => {
  const { troubleshoot } = await import('/static/js/outcome.js');
  return errors.map((data) => troubleshoot(data));
}"""
# The three places logs live; "check the logs" helps only when it names one.
NAMED_LOGS = re.compile(r"Logs tab|devtools|terminal where the sandforge server runs")
# Records every toast the page shows, so one that came and went is still seen.
RECORD_TOASTS = """() => {
  window.toastsShown = [];
  new MutationObserver((changes) => {
    for (const change of changes) {
      for (const node of change.addedNodes) window.toastsShown.push(node.textContent);
    }
  }).observe(document.getElementById('toasts'), { childList: true });
}"""


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
    expect(turn.locator(".complete-card")).to_have_count(0)

    # The failed run's sandbox is gone and nothing was saved: the Code tab does not keep
    # showing the starter's files, and the preview says there is none.
    expect(page.locator("#file-count")).to_be_hidden()
    page.get_by_role("tab", name=re.compile("Code")).click()
    expect(page.locator("#file-tree")).to_contain_text("No saved files yet")
    expect(page.locator("#file-tree .tree-item")).to_have_count(0)
    page.get_by_role("tab", name="Preview").click()
    expect(page.locator("#preview-overlay")).to_contain_text("No preview")
    expect(page.get_by_label("Share link")).to_have_value("")
    screenshot(page, "create-daytona-failed")

    # "Try again" sends the prompt once more as a follow-up turn.
    with page.expect_request("**/api/agent/stream-daytona") as posted:
        card.get_by_role("button", name="Try again").click()
    assert request_json(posted.value)["messages"][-1]["content"] == f"Build a page {BREAK_MARK}"
    expect(page.locator(".turn")).to_have_count(2)
    expect(page.locator(".turn").nth(1).locator(".error-card")).to_be_visible()


def test_every_error_says_which_log_to_read(offline_server: Server, page: Page) -> None:
    page.goto(f"{offline_server.base_url}/create-daytona")
    errors = [{"code": code, "message": "Something broke"} for code in ERROR_CODES]
    errors.append({"message": "Connection to api.example.com timed out"})
    helps = page.evaluate(TROUBLESHOOT, errors)
    for error, help_ in zip(errors, helps, strict=True):
        assert help_["title"] and help_["steps"], error
        for step in help_["steps"]:
            if re.search(r"\blogs?\b|console|output", step, re.IGNORECASE):
                assert NAMED_LOGS.search(step), (error, step)
        assert help_["title"] != "Something did not answer", error


def test_stop_run(scripted_server: Server, page: Page) -> None:
    page.goto(f"{scripted_server.base_url}/create-daytona")
    page.get_by_label("Describe your app").fill(f"Build a page {HANG_MARK}")
    page.get_by_role("button", name="Generate").click()
    turn = page.locator(".turn").first
    expect(turn.locator(".text-block")).to_contain_text("Thinking about it")
    expect(page.locator("#followup-note")).to_be_visible()
    page.evaluate(RECORD_TOASTS)
    page.get_by_role("button", name="Stop run").click()

    # Stopping is not failing: a neutral "Stopped" state, no red error card, no alert.
    card = turn.locator(".stopped-card")
    expect(card).to_be_visible(timeout=UI_TIMEOUT_MS)
    expect(card).to_contain_text("Stopped")
    expect(card).not_to_have_attribute("role", "alert")
    expect(turn.locator(".error-card")).to_have_count(0)
    expect(turn.locator('.step[data-state="failed"]')).to_have_count(0)
    expect(turn.locator(".stepper")).to_have_attribute("data-outcome", "stopped")
    expect(page.locator("#run-badge")).to_have_text("stopped")
    expect(page.get_by_role("button", name="Stop run")).to_be_hidden()
    expect(page.get_by_role("button", name="Send")).to_be_enabled()
    # Nothing says the run is being stopped once it has stopped (no toast lingering after it).
    expect(turn.locator(".step-msg")).not_to_contain_text("Stopping")
    assert not [t for t in page.evaluate("window.toastsShown") if "Stopping" in t]
    screenshot(page, "create-daytona-stopped-run")
