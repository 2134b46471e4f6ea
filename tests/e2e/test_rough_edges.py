"""The rough edges a new user hit (issue 15, defects 6, 7, 9, 10 and 11), each as they saw it."""

from __future__ import annotations

import json
from typing import Any

from playwright.sync_api import Browser, Dialog, Page, expect

from .conftest import ConsoleErrors, Server, new_context, request_json, screenshot

LONG_LINE = "const greeting = " + '"' + "hello " * 60 + '";\n'


def make_project(server: Server, name: str) -> str:
    """A static-site project made through the API (offline: the starter); its id."""
    body = {"messages": [{"role": "user", "content": f"Create a {name}"}], "projectName": name}
    with (
        server.client() as client,
        client.stream("POST", "/api/agent/stream", json=body) as response,
    ):
        assert response.status_code == 200, response.read()
        events = [
            json.loads(line[5:]) for line in response.iter_lines() if line.startswith("data:")
        ]
    assert events[-1]["type"] == "complete", events
    project_id: str = events[-1]["data"]["projectId"]
    return project_id


def put_file(server: Server, project_id: str, path: str, content: str) -> dict[str, Any]:
    with server.client() as client:
        response = client.put(f"/api/projects/{project_id}/files/{path}", json={"content": content})
    assert response.status_code == 200, response.text
    saved: dict[str, Any] = response.json()
    return saved


def test_examples_and_names_tell_a_newcomer_what_is_what(
    offline_server: Server, page: Page
) -> None:
    page.goto(f"{offline_server.base_url}/")
    # Defect 6: a card says what the example builds, not "… with · 5 requirements".
    expect(page.locator(".example-sub")).to_have_text(
        [
            "Create a calculator with a modern design",
            "Create a todo app with dark mode",
            "Add/edit/delete tasks, mark tasks as complete, filter by status, dark mode toggle, "
            "localStorage persistence",
        ]
    )
    # Defect 11: the two kinds of project say what they are, and where a sandbox runs is a choice.
    nav = page.get_by_role("navigation", name="Main")
    expect(nav.get_by_role("link")).to_have_text(["Sandboxed app", "Static site", "Sandboxes"])
    expect(nav.get_by_role("link", name="Sandboxed app")).to_have_attribute("aria-current", "page")
    expect(nav.get_by_role("link", name="Static site")).to_have_attribute(
        "title",
        "Plain HTML, CSS and JS kept by sandforge and served as they are: nothing runs, "
        "no sandbox. Quick to make and to share.",
    )
    runs_on = page.get_by_label("Runs on")
    expect(runs_on).to_have_value("local")
    expect(runs_on.locator("option[value=daytona]")).to_be_disabled()
    expect(runs_on.locator("option[value=daytona]")).to_have_text(
        "Daytona (cloud sandbox) (not set up)"
    )
    screenshot(page, "rough-start")
    page.get_by_label("Describe your app").fill("Create a calculator")
    with page.expect_request("**/api/agent/stream-daytona") as posted:
        page.get_by_role("button", name="Generate").click()
    assert request_json(posted.value)["sandbox"] == "local"
    expect(page.locator(".complete-card")).to_be_visible()


def test_same_named_projects_are_told_apart_renamed_and_deleted(
    offline_server: Server, page: Page
) -> None:
    first = make_project(offline_server, "Abacus")
    second = make_project(offline_server, "Abacus")
    page.goto(f"{offline_server.base_url}/create")
    items = page.locator("#recent-list li").filter(has_text="Abacus")
    expect(items).to_have_count(2)
    metas = items.locator(".p-meta").all_inner_texts()
    assert metas[0] != metas[1]
    assert {f"#{first[-4:]}", f"#{second[-4:]}"} == {m.rsplit(" · ", 1)[1] for m in metas}

    def answer(dialog: Dialog) -> None:
        dialog.accept("Abacus deluxe" if dialog.type == "prompt" else "")

    page.on("dialog", answer)
    page.locator(f"#recent-list li:has([data-project='{first}'])").get_by_role(
        "button", name="Rename Abacus"
    ).click()
    expect(page.locator(f"[data-project='{first}'] .p-title")).to_have_text("Abacus deluxe")
    page.locator(f"#recent-list li:has([data-project='{second}'])").get_by_role(
        "button", name="Delete Abacus"
    ).click()
    expect(page.locator(f"[data-project='{second}']")).to_have_count(0)
    with offline_server.client() as client:
        assert client.get(f"/api/projects/{second}").status_code == 404
        assert client.get(f"/api/projects/{first}").json()["name"] == "Abacus deluxe"
    screenshot(page, "rough-projects")


def test_code_tab_hides_caches_and_names_typescript(offline_server: Server, page: Page) -> None:
    project = make_project(offline_server, "Typed")
    put_file(offline_server, project, ".vite/deps/react.js", "export default {};\n")
    put_file(offline_server, project, "src/App.tsx", "export const App = () => <p>hi</p>;\n")
    page.goto(f"{offline_server.base_url}/create?project={project}")
    page.get_by_role("tab", name="Code").click()
    tree = page.locator("#file-tree")
    expect(tree.locator(".tree-item.file[data-path='src/App.tsx']")).to_be_visible()
    expect(tree.locator("[data-path^='.vite']")).to_have_count(0)
    expect(tree.locator(".tree-item.file[data-path='src/App.tsx'] .fi")).to_have_text("TSX")
    tree.locator(".tree-item.file[data-path='src/App.tsx']").click()
    expect(page.locator("#code-meta")).to_contain_text("TypeScript (TSX)")


def test_a_phone_gets_one_pane_at_a_time(
    offline_server: Server, browser: Browser, console_errors: ConsoleErrors
) -> None:
    project = make_project(offline_server, "Pocket")
    put_file(offline_server, project, "app.js", LONG_LINE)
    context = new_context(
        browser,
        console_errors,
        viewport={"width": 390, "height": 844},
        is_mobile=True,
        has_touch=True,
    )
    try:
        page = context.new_page()
        page.goto(f"{offline_server.base_url}/create")
        expect(page.locator(".kbd-hint").first).to_be_hidden()
        page.goto(f"{offline_server.base_url}/create?project={project}")
        toggle = page.get_by_role("group", name="Show")
        expect(toggle).to_be_visible()
        expect(page.locator(".conversation")).to_be_visible()
        expect(page.locator("#workspace")).to_be_hidden()
        placeholder = page.get_by_label("Ask for a change").get_attribute("placeholder") or ""
        assert "Ctrl" not in placeholder
        screenshot(page, "mobile-chat")

        toggle.get_by_role("button", name="Preview & code").click()
        expect(page.locator("#workspace")).to_be_visible()
        expect(page.locator(".conversation")).to_be_hidden()
        expect(page.frame_locator("#preview-frame").locator("h1")).to_have_text("Pocket")
        screenshot(page, "mobile-preview")
        page.get_by_role("tab", name="Code").click()
        page.locator("#file-tree [data-path='app.js']").click()
        content = page.locator("#code-scroll .cm-content")
        expect(content).to_contain_text("hello hello")
        # The long line wraps: nothing runs off the side of the screen.
        assert content.evaluate("el => el.scrollWidth <= el.clientWidth + 1")
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        screenshot(page, "mobile-code")
    finally:
        context.close()
