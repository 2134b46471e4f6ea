"""/create-daytona with the scripted model: streaming, preview, share link, files, follow-up."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, Request, expect

from .conftest import UI_TIMEOUT_MS, ConsoleErrors, Server, new_context, request_json, screenshot
from .scripted_model import DEFAULT_HEADING, INTRO_CHUNKS, SUMMARY_CHUNKS

STATUSES = ["creating", "initializing", "generating", "writing", "starting", "preview", "complete"]
MOD = "Control"


def logged_seqs(page: Page, turn: int) -> list[tuple[int, int, str]]:
    """(first seq, last seq, type) of each line in a turn's run log."""
    rows: list[dict[str, str]] = (
        page.locator(".turn")
        .nth(turn)
        .locator(".runlog-list li")
        .evaluate_all(
            "els => els.map(e => ({seq: e.dataset.seq, last: e.dataset.lastSeq || e.dataset.seq,"
            " type: e.dataset.type}))"
        )
    )
    return [(int(r["seq"]), int(r["last"]), r["type"]) for r in rows]


def server_events(server: Server, run_id: str) -> list[dict[str, Any]]:
    import json

    with server.client() as client:
        text = client.get(f"/api/runs/{run_id}/events").text
    return [json.loads(line[5:]) for line in text.splitlines() if line.startswith("data:")]


def test_prompt_streams_renders_in_order_and_previews(
    scripted_server: Server, page: Page, browser: Browser, console_errors: ConsoleErrors
) -> None:
    page.goto(f"{scripted_server.base_url}/create-daytona")
    expect(page.get_by_role("heading", level=1)).to_contain_text("build")
    screenshot(page, "create-daytona-start")

    prompt = page.get_by_label("Describe your app")
    expect(prompt).to_be_focused()
    prompt.fill("Build a counter app")
    page.get_by_role("checkbox", name="UI designer").check()  # a second persona
    with page.expect_request("**/api/agent/stream-daytona") as posted:
        prompt.press(f"{MOD}+Enter")
    body = request_json(posted.value)
    assert body["messages"] == [{"role": "user", "content": "Build a counter app"}]
    assert body["projectType"] == "web-app"
    assert sorted(body["agents"]) == ["frontend-dev", "ui-designer"]
    assert "sandboxId" not in body

    turn = page.locator(".turn").first
    expect(turn.locator(".msg-user")).to_have_text("Build a counter app")
    # Assistant text streams in (the first chunks are visible before the run ends).
    expect(turn.locator(".text-block").first).to_contain_text("I'll build a counter app")
    expect(turn.locator(".complete-card")).to_be_visible(timeout=UI_TIMEOUT_MS)

    # Text, then the three files as compact rows with +lines, then the summary.
    text_blocks = turn.locator(".text-block")
    expect(text_blocks).to_have_count(2)
    expect(text_blocks.nth(0)).to_have_text(re.compile(r"^\s*I'll build a counter app: one page"))
    expect(text_blocks.nth(0).locator("strong")).to_have_text("counter")
    expect(text_blocks.nth(1)).to_have_text("".join(SUMMARY_CHUNKS))
    rows = turn.locator(".tool-row")
    expect(rows).to_have_count(3)
    expect(rows.locator(".tool-file")).to_have_text(["index.html", "styles.css", "app.js"])
    for i in range(3):
        expect(rows.nth(i).locator(".added")).to_have_text(re.compile(r"^\+\d+$"))
    expect(rows.nth(0)).to_have_attribute("data-action", re.compile("^(create|update)$"))

    # The stepper ends with every step done.
    steps = turn.locator(".stepper-track .step")
    expect(steps).to_have_count(7)
    for i in range(7):
        expect(steps.nth(i)).to_have_attribute("data-state", "done")

    # Every server event was rendered once, in order: the run log covers seq 1..N.
    project_id = page.evaluate("new URLSearchParams(location.search).get('project')")
    assert project_id, "the URL names the project"
    runs = [r for r in scripted_server.runs() if project_id in (r.get("projectId"), r["sandboxId"])]
    assert len(runs) == 1
    events = server_events(scripted_server, runs[0]["runId"])
    logged = logged_seqs(page, 0)
    covered = [s for first, last, _ in logged for s in range(first, last + 1)]
    assert covered == list(range(1, len(events) + 1))
    types = [t for _, _, t in logged]
    assert types[-1] == "complete"
    statuses = [e["data"]["status"] for e in events if e["type"] == "progress"]
    ranks = [STATUSES.index(s) for s in statuses]
    assert ranks == sorted(ranks), statuses  # the seed's order, never backwards
    assert statuses[0] == "creating" and statuses[-1] == "complete"
    deltas = [e["data"]["content"] for e in events if e["type"] == "message"]
    assert "".join(deltas).startswith("".join(INTRO_CHUNKS))

    # The preview iframe loads the generated app; the badge says ready.
    frame = page.frame_locator("#preview-frame")
    expect(frame.locator("h1")).to_have_text(DEFAULT_HEADING, timeout=UI_TIMEOUT_MS)
    frame.locator("#inc").click()
    expect(frame.locator("#count")).to_have_text("1")
    expect(page.locator("#preview-status")).to_have_text("ready", timeout=UI_TIMEOUT_MS)
    expect(page.locator("#preview-overlay")).to_be_hidden()
    screenshot(page, "create-daytona-preview")

    # The share link carries the token; copying it works.
    share = page.get_by_label("Share link").input_value()
    assert re.fullmatch(
        rf"http://3000-[a-z0-9]+\.sandforge\.localhost:{scripted_server.port}/\?token=[\w-]+", share
    ), share
    expect(page.locator("#open-link")).to_have_attribute("href", share)
    page.locator("#copy-link").click()
    expect(page.locator(".toast")).to_contain_text("copied")
    assert page.evaluate("navigator.clipboard.readText()") == share

    # The share link opens with its token in a fresh browser context; without it, it is private.
    fresh = new_context(browser, console_errors)
    try:
        viewer = fresh.new_page()
        console_errors.allow(r"status of 401")
        viewer.goto(share.split("?")[0])
        expect(viewer.get_by_role("heading", level=1)).to_have_text("This preview is private")
        viewer.goto(share)
        expect(viewer.get_by_role("heading", level=1)).to_have_text(DEFAULT_HEADING)
        assert "token=" not in viewer.url
    finally:
        fresh.close()

    # Files: tree and a highlighting editor.
    page.get_by_role("tab", name=re.compile("Code")).click()
    tree = page.locator("#file-tree")
    expect(tree.locator(".tree-item.file .name")).to_have_text(
        ["app.js", "index.html", "styles.css"]
    )
    expect(page.locator("#code-path")).to_have_text("index.html")  # the entry file opens first
    expect(page.locator("#code-scroll .tok-typeName").first).to_be_visible()
    tree.get_by_role("button", name="app.js").click()
    expect(page.locator("#code-path")).to_have_text("app.js")
    code = page.locator("#code-scroll .cm-content")
    expect(code).to_contain_text('document.getElementById("count")')
    expect(code.locator(".tok-keyword").first).to_have_text("const")
    expect(code.locator(".tok-string").first).to_have_text('"count"')
    expect(code.locator(".cm-line")).to_have_count(9)  # the last one empty, after the final newline
    screenshot(page, "create-daytona-code")
    page.emulate_media(color_scheme="dark")
    screenshot(page, "create-daytona-code-dark")
    page.get_by_role("tab", name="Preview").click()
    screenshot(page, "create-daytona-preview-dark")
    page.emulate_media(color_scheme="light")

    # A file row in the conversation opens that file.
    page.get_by_role("tab", name="Preview").click()
    turn.locator(".tool-file", has_text="styles.css").click()
    expect(page.locator("#code-path")).to_have_text("styles.css")
    expect(page.locator("#code-scroll .tok-propertyName").first).to_have_text("color-scheme")

    # Logs: the dev server's log tail.
    page.get_by_role("tab", name="Logs").click()
    expect(page.locator("#log-tail")).to_contain_text("GET /", timeout=UI_TIMEOUT_MS)
    screenshot(page, "create-daytona-logs")
    page.get_by_role("tab", name="Preview").click()


def test_follow_up_continues_in_the_same_sandbox(scripted_server: Server, page: Page) -> None:
    page.goto(f"{scripted_server.base_url}/create-daytona")
    page.get_by_label("Describe your app").fill("Build a counter app")
    page.get_by_role("button", name="Generate").click()
    expect(page.locator(".complete-card")).to_be_visible(timeout=UI_TIMEOUT_MS)
    project_id = page.evaluate("new URLSearchParams(location.search).get('project')")
    run = next(
        r for r in scripted_server.runs() if project_id in (r.get("projectId"), r["sandboxId"])
    )
    sandbox_id = run["sandboxId"]
    frame = page.frame_locator("#preview-frame")
    expect(frame.locator("h1")).to_have_text(DEFAULT_HEADING, timeout=UI_TIMEOUT_MS)

    followup = page.get_by_label("Ask for a change")
    expect(followup).to_be_focused()
    followup.fill("Change the heading to Second Version")

    def is_stream(request: Request) -> bool:
        return request.url.endswith("/api/agent/stream-daytona") and request.method == "POST"

    with page.expect_request(is_stream) as posted:
        followup.press("Control+Enter")
    body = request_json(posted.value)
    assert body["sandboxId"] == sandbox_id
    assert body.get("projectId", project_id) == project_id
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]
    assert body["messages"][0]["content"] == "Build a counter app"
    assert body["messages"][1]["content"].startswith("I'll build a **counter** app")
    assert body["messages"][2]["content"] == "Change the heading to Second Version"

    second = page.locator(".turn").nth(1)
    expect(second.locator(".complete-card")).to_be_visible(timeout=UI_TIMEOUT_MS)
    expect(second.locator(".tool-row").first).to_have_attribute("data-action", "update")
    expect(frame.locator("h1")).to_have_text("Second Version", timeout=UI_TIMEOUT_MS)
    assert page.evaluate("new URLSearchParams(location.search).get('project')") == project_id
    assert scripted_server.sandbox_ids().count(sandbox_id) == 1
    screenshot(page, "create-daytona-follow-up")

    # The Projects dialog lists it as the current project.
    page.get_by_role("button", name="Projects").click()
    dialog = page.get_by_role("dialog", name="Projects")
    expect(dialog.locator(f'a[data-project="{project_id}"]')).to_have_attribute(
        "aria-current", "true"
    )
    screenshot(page, "create-daytona-projects-dialog")
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()

    # The projects list reopens it: both turns replay, and the preview comes back.
    page.goto(f"{scripted_server.base_url}/create-daytona")
    item = page.locator(f'#recent-list a[data-project="{project_id}"]')
    expect(item).to_contain_text("2 turns")
    screenshot(page, "create-daytona-projects")
    item.click()
    expect(page.locator(".turn")).to_have_count(2)
    expect(page.locator(".turn").nth(1).locator(".msg-user")).to_have_text(
        "Change the heading to Second Version"
    )
    expect(page.locator(".complete-card")).to_have_count(2)
    expect(frame.locator("h1")).to_have_text("Second Version", timeout=UI_TIMEOUT_MS)


@pytest.mark.parametrize("where", ["reload", "leave"])
def test_leaving_the_page_never_kills_the_run(
    scripted_server: Server, page: Page, where: str
) -> None:
    page.goto(f"{scripted_server.base_url}/create-daytona")
    page.get_by_label("Describe your app").fill(f"Build a counter app ({where})")
    page.get_by_role("button", name="Generate").click()
    # Mid-run: the first words have streamed, the run goes on.
    expect(page.locator(".text-block").first).to_contain_text("I'll build")
    expect(page).to_have_url(re.compile(r"\?(project|run)="))
    if where == "reload":
        screenshot(page, "create-daytona-streaming")
    url = page.url
    if where == "leave":
        page.goto(f"{scripted_server.base_url}/sandboxes")
        run = next(r for r in scripted_server.runs() if r["prompt"].endswith(f"({where})"))
        assert scripted_server.wait_for_run(run["runId"])["state"] == "succeeded"
        page.goto(url)
    else:
        page.reload()
    # The page replays the run (and tails it if it is still going).
    turn = page.locator(".turn").first
    expect(turn.locator(".msg-user")).to_have_text(f"Build a counter app ({where})")
    expect(turn.locator(".complete-card")).to_be_visible(timeout=UI_TIMEOUT_MS)
    expect(turn.locator(".tool-row")).to_have_count(3)
    expect(page.frame_locator("#preview-frame").locator("h1")).to_have_text(
        DEFAULT_HEADING, timeout=UI_TIMEOUT_MS
    )
