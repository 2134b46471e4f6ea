"""A run whose preview still has problems: a warning instead of "live", and a "Fix it" button."""

from __future__ import annotations

import json
import re
from typing import Any

from playwright.sync_api import Page, Request, expect

from .conftest import UI_TIMEOUT_MS, ConsoleErrors, Server, request_json, screenshot
from .scripted_model import DEFAULT_HEADING, FIX_IT_OPENING, THROW_MARK

THROWN = "countr is not defined"

# A turn fed the events of a run whose automatic repair gave up, as the server streams them.
REPAIRED_TURN = """async (events) => {
  const { TurnView } = await import('/static/js/turn.js');
  const asked = [];
  const turn = new TurnView({
    prompt: 'Build a counter',
    onFileClick() {}, onRetry() {}, onOpenPreview() {}, onReconnect() {},
    onFixIt: (problems) => asked.push(problems),
  });
  document.body.append(turn.el);
  events.forEach((event, i) => turn.apply(event, i + 1));
  turn.el.querySelector('.fix-it-btn').click();
  return {
    outcome: turn.outcome,
    card: turn.el.querySelector('.result').innerText,
    repairNotes: [...turn.el.querySelectorAll('.repair-note')].map((n) => n.innerText),
    asked,
  };
}"""


def progress(status: str, message: str) -> dict[str, Any]:
    return {"type": "progress", "data": {"status": status, "message": message}}


def run_events(server: Server, run_id: str) -> list[dict[str, Any]]:
    with server.client() as client:
        text = client.get(f"/api/runs/{run_id}/events").text
    return [json.loads(line[5:]) for line in text.splitlines() if line.startswith("data:")]


def test_problems_show_a_warning_and_fix_it_sends_them(
    scripted_server: Server, page: Page, console_errors: ConsoleErrors
) -> None:
    console_errors.allow(THROWN)  # the generated app's own error, in the preview frame
    page.goto(f"{scripted_server.base_url}/create-daytona")
    page.get_by_label("Describe your app").fill(f"Build a counter app {THROW_MARK}")
    page.get_by_role("button", name="Generate").click()

    turn = page.locator(".turn").first
    card = turn.locator(".problems-card")
    expect(card).to_be_visible(timeout=UI_TIMEOUT_MS)
    expect(card.locator(".problem-list")).to_contain_text(THROWN)
    # Not a success: no green "live" card, and the badge and stepper say there are problems.
    expect(turn.locator(".complete-card")).to_have_count(0)
    expect(page.get_by_text("✓ Your app is live")).to_have_count(0)
    expect(page.locator("#run-badge")).to_have_text("problems")
    expect(turn.locator(".stepper")).to_have_attribute("data-outcome", "problems")

    # When the server's repair loop ran and gave up, the card says so plainly.
    project_id = page.evaluate("new URLSearchParams(location.search).get('project')")
    run = next(r for r in scripted_server.runs() if r["projectId"] == project_id)
    complete = run_events(scripted_server, run["runId"])[-1]["data"]
    if complete.get("repairs"):
        expect(card).to_contain_text("Automatic repair stopped")

    # The preview stays live: the app (with its bug) is there to look at, with its link.
    frame = page.frame_locator("#preview-frame")
    expect(frame.locator("h1")).to_have_text(DEFAULT_HEADING, timeout=UI_TIMEOUT_MS)
    expect(page.locator("#preview-status")).to_have_text("ready", timeout=UI_TIMEOUT_MS)
    expect(page.get_by_label("Share link")).not_to_have_value("")
    screenshot(page, "create-daytona-problems")
    page.emulate_media(color_scheme="dark")
    screenshot(page, "create-daytona-problems-dark")
    page.emulate_media(color_scheme="light")

    # "Fix it" sends the problems as a follow-up to the same project.
    def is_stream(request: Request) -> bool:
        return request.url.endswith("/api/agent/stream-daytona") and request.method == "POST"

    with page.expect_request(is_stream) as posted:
        card.get_by_role("button", name="Fix it").click()
    body = request_json(posted.value)
    assert body["projectId"] == project_id
    fix = body["messages"][-1]["content"]
    assert fix.startswith(FIX_IT_OPENING), fix
    assert THROWN in fix
    second = page.locator(".turn").nth(1)
    expect(second.locator(".msg-user")).to_contain_text(FIX_IT_OPENING)
    expect(second.locator(".complete-card")).to_be_visible(timeout=UI_TIMEOUT_MS)
    expect(page.locator("#run-badge")).to_have_text("succeeded")
    frame.locator("#inc").click()
    expect(frame.locator("#count")).to_have_text("1")
    screenshot(page, "create-daytona-problems-fixed")


def test_repairs_that_gave_up_are_said_plainly(offline_server: Server, page: Page) -> None:
    page.goto(f"{offline_server.base_url}/create-daytona")
    remaining = ["Console error: ReferenceError: countr is not defined (app.js:3)"]
    complete = {
        "success": True,
        "sandboxId": "sb1",
        "projectDir": "/workspace",
        "previewUrl": "http://3000-pj1.localhost:8000/",
        "tokensUsed": 10,
        "message": "Your app is live",
        "render": {"ok": False, "consoleErrors": ["ReferenceError: countr is not defined"]},
        "repairs": {"attempts": 3, "fixed": 1, "remaining": remaining},
    }
    events = [
        progress("generating", "Generating with a model..."),
        progress("preview", "Checking the rendered page in Chromium"),
        progress("generating", "Fixing 1 console error (attempt 1 of 3)"),
        progress("preview", "Checking the rendered page in Chromium"),
        progress("complete", "Preview ready"),
        {"type": "complete", "data": complete},
    ]
    shown = page.evaluate(REPAIRED_TURN, events)
    assert shown["outcome"] == "problems"
    assert "Automatic repair stopped after 3 attempts: 1 problem is left" in shown["card"]
    assert "It fixed 1 problem" in shown["card"]
    assert remaining[0] in shown["card"]
    assert "Your app is live" not in shown["card"]
    # The repair pass shows in the conversation, like the run's other steps.
    assert len(shown["repairNotes"]) == 1
    assert "Fixing 1 console error (attempt 1 of 3)" in shown["repairNotes"][0]
    # "Fix it" asks for exactly what is left.
    assert shown["asked"] == [remaining]
    assert re.search(r"devtools", shown["card"])
