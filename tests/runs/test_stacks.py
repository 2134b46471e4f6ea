"""The Python, Next.js and full-stack project types: generated offline and by a scripted model,
rendered in Chromium through the preview proxy, and updated live by each stack's reload."""

from __future__ import annotations

import json
from typing import Any

import pytest

from sandforge.events import CompleteEvent, Event
from tests.conftest import LiveServer

SCRIPTED = "factory:tests.scripted.scripted_models:follows_json"
PROMPT = "Create a trip planner with a packing list"
TITLE = "Trip Planner"
WAIT_MS = 90_000
NPM_PACKAGE = "clsx@2.1.1"
"""Small, and typed: the rendered check runs tsc, which refuses an untyped import."""


@pytest.fixture
async def stack_server(make_server: Any) -> LiveServer:
    # Next.js compiles its first page on the first request: slow on a busy machine.
    server: LiveServer = await make_server(
        allowed_models=[SCRIPTED], dev_server_ready_timeout_s=120
    )
    return server


async def _complete(server: LiveServer, body: dict[str, Any]) -> tuple[CompleteEvent, list[Event]]:
    events = [event for _, event in await server.stream("/api/agent/stream-daytona", body)]
    assert isinstance(events[-1], CompleteEvent), events[-1]
    return events[-1], events


async def generate(server: LiveServer, project_type: str) -> CompleteEvent:
    """A new project from the offline scaffolder (no model is configured)."""
    body = {"messages": [{"role": "user", "content": PROMPT}], "projectType": project_type}
    complete, _ = await _complete(server, body)
    return complete


async def scripted(server: LiveServer, first: CompleteEvent, verb: str, **args: str) -> list[Event]:
    """A follow-up turn of the scripted model, which does what `verb` and `args` say."""
    body = {
        "messages": [{"role": "user", "content": f"{verb} {json.dumps(args)}"}],
        "projectId": first.data.projectId,
        "model": SCRIPTED,
    }
    complete, events = await _complete(server, body)
    assert complete.data.sandboxId == first.data.sandboxId
    return events


async def open_preview(browser: Any, complete: CompleteEvent) -> Any:
    page = await browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.errors = errors
    await page.goto(f"{complete.data.previewUrl}?token={complete.data.accessToken}")
    return page


async def wait_for_text(page: Any, selector: str, text: str, *, reload: bool = False) -> None:
    """Until `selector` shows `text`; with `reload`, reloading the page between looks."""
    if not reload:
        await page.wait_for_function(
            "([s, t]) => [...document.querySelectorAll(s)].some(e => e.textContent.includes(t))",
            arg=[selector, text],
            timeout=WAIT_MS,
        )
        return
    for _ in range(int(WAIT_MS / 500)):
        if text in " ".join(await page.locator(selector).all_text_contents()):
            return
        await page.wait_for_timeout(500)
        await page.reload()
    raise AssertionError(f"{selector} never showed {text!r}")


async def test_fastapi_renders_its_jinja_template_and_reloads_edits(
    stack_server: LiveServer, browser: Any
) -> None:
    complete = await generate(stack_server, "fastapi")
    page = await open_preview(browser, complete)
    await wait_for_text(page, "h1", TITLE)
    # Static files come from app/static: the stylesheet applied.
    assert await page.evaluate("getComputedStyle(document.body).display") == "grid"

    sandbox = await stack_server.services.fleet.find(complete.data.sandboxId)
    template = (await sandbox.read_file("app/templates/index.html")).decode()
    edited = template.replace(f"<h1>{TITLE}</h1>", "<h1>Edited Template</h1>")
    await sandbox.write_file("app/templates/index.html", edited.encode())
    await wait_for_text(page, "h1", "Edited Template", reload=True)

    # Python code: the scripted model edits app/main.py and uvicorn reloads it.
    events = await scripted(
        stack_server,
        complete,
        "edit",
        path="app/main.py",
        search='"reload on save"',
        replace='"reloaded by uvicorn"',
    )
    assert any(e.type == "tool" and e.data.file == "app/main.py" for e in events)
    await wait_for_text(page, "li", "reloaded by uvicorn", reload=True)
    assert page.errors == []

    # A package from PyPI, through the host's package bridge (the sandbox has no egress).
    events = await scripted(stack_server, complete, "run", command="pip install tomli-w==1.2.0")
    runs = [e for e in events if e.type == "tool" and e.data.action == "run"]
    assert runs and runs[0].data.file == "pip install tomli-w==1.2.0", runs
    assert runs[0].data.exitCode == 0, runs
    requirements = (await sandbox.read_file("requirements.txt")).decode()
    assert requirements.splitlines()[-1] == "tomli-w==1.2.0"
    assert (await sandbox.exec("python3 -c 'import tomli_w'")).exit_code == 0

    # A sandbox rebuilt from the stored files installs the added package again.
    deleted = await stack_server.client.delete(f"/api/sandboxes/{complete.data.sandboxId}")
    assert deleted.status_code == 204, deleted.text
    await page.reload()
    await wait_for_text(page, "li", "reloaded by uvicorn")
    project = (await stack_server.client.get(f"/api/projects/{complete.data.projectId}")).json()
    rebuilt = await stack_server.services.fleet.find(project["sandboxId"])
    assert rebuilt.id != sandbox.id
    assert (await rebuilt.exec("python3 -c 'import tomli_w'")).exit_code == 0


@pytest.mark.parametrize(
    ("project_type", "path", "search", "replace", "updated"),
    [
        # Everything a Streamlit page shows arrives over its websocket, through the proxy;
        # the edit reruns the script on save.
        ("streamlit", "app.py", f"st.title({json.dumps(TITLE)})", 'st.title("Rerun")', "Rerun"),
        # The update comes over Next's HMR websocket through the proxy.
        ("nextjs", "app/page.tsx", f"<h1>{TITLE}</h1>", "<h1>Hot Reloaded</h1>", "Hot Reloaded"),
    ],
)
async def test_an_edit_appears_in_place_over_the_stacks_websocket(
    stack_server: LiveServer,
    browser: Any,
    project_type: str,
    path: str,
    search: str,
    replace: str,
    updated: str,
) -> None:
    complete = await generate(stack_server, project_type)
    page = await open_preview(browser, complete)
    await wait_for_text(page, "h1", TITLE)
    await page.evaluate("window.__sameDocument = true")

    await scripted(stack_server, complete, "edit", path=path, search=search, replace=replace)
    await wait_for_text(page, "h1", updated)
    assert await page.evaluate("window.__sameDocument") is True
    assert page.errors == []


async def test_fullstack_frontend_shows_data_from_the_backends_sqlite(
    stack_server: LiveServer, browser: Any
) -> None:
    complete = await generate(stack_server, "fullstack")
    page = await open_preview(browser, complete)
    await wait_for_text(page, "li", "Ship it")
    first = await page.locator("li").first.text_content()
    assert first == "Read the code in backend/main.py"

    # The backend is a service of its own, with its own preview host.
    api = await stack_server.preview_get(
        complete.data.projectId, "/api/items", complete.data.accessToken, port=8000
    )
    assert api.status_code == 200 and len(api.json()) == 3
    assert complete.data.services is not None
    assert [(s.name, s.port) for s in complete.data.services] == [("web", 3000), ("api", 8000)]
    assert complete.data.services[0].previewUrl == complete.data.previewUrl
    preview = f"/api/projects/{complete.data.projectId}/preview"
    status = (await stack_server.client.get(preview, params={"service": "api"})).json()
    assert status["status"] == "ready" and "Uvicorn running" in status["logTail"]
    unknown = await stack_server.client.get(preview, params={"service": "db"})
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "service_not_found"

    await check_service_tabs(stack_server, browser, complete)

    # A row added through the page goes to SQLite and comes back after a reload.
    await page.fill("input", "Pack the tent")
    await page.click("button[type=submit]")
    await wait_for_text(page, "li", "Pack the tent", reload=True)

    await scripted(
        stack_server,
        complete,
        "edit",
        path="backend/main.py",
        search="ORDER BY id",
        replace="ORDER BY id DESC",
    )
    for _ in range(int(WAIT_MS / 500)):
        await page.reload()
        await wait_for_text(page, "li", "Ship it")
        if await page.locator("li").first.text_content() == "Pack the tent":
            break
        await page.wait_for_timeout(500)
    else:
        raise AssertionError("the backend never reloaded its new query")
    assert page.errors == []

    await check_npm_install(stack_server, page, complete)


async def check_npm_install(server: LiveServer, page: Any, complete: CompleteEvent) -> None:
    """The frontend gains a package from npm (the sandbox has no egress) and uses it; a
    sandbox rebuilt from the stored files installs it again."""
    install = f"cd frontend && npm install --no-audit --no-fund {NPM_PACKAGE}"
    events = await scripted(server, complete, "run", command=install)
    runs = [e for e in events if e.type == "tool" and e.data.action == "run"]
    assert runs and runs[0].data.exitCode == 0, runs
    sandbox = await server.services.fleet.find(complete.data.sandboxId)
    manifest = json.loads(await sandbox.read_file("frontend/package.json"))
    assert manifest["dependencies"]["clsx"] == "^2.1.1"
    app = (await sandbox.read_file("frontend/src/App.tsx")).decode()

    await scripted(
        server,
        complete,
        "write",
        path="frontend/src/App.tsx",
        content="import clsx from 'clsx'\n"
        + app.replace("<h1>", "<h1 className={clsx('title', { added: true })}>", 1),
    )
    # The page reloaded when Vite restarted for the new package: a reload, not HMR, may be
    # what shows the edit.
    await wait_for_text(page, "h1.title.added", TITLE, reload=True)

    deleted = await server.client.delete(f"/api/sandboxes/{complete.data.sandboxId}")
    assert deleted.status_code == 204, deleted.text
    await page.reload()
    await wait_for_text(page, "h1.title.added", TITLE, reload=True)
    project = (await server.client.get(f"/api/projects/{complete.data.projectId}")).json()
    assert project["sandboxId"] != complete.data.sandboxId


async def check_service_tabs(server: LiveServer, browser: Any, complete: CompleteEvent) -> None:
    """The project's page shows a tab per service; the backend's tab shows its own preview,
    status and log."""
    assert complete.data.services is not None
    api_url = complete.data.services[1].previewUrl
    page = await browser.new_page()
    await page.goto(
        f"http://localhost:{server.settings.port}/create-daytona?project={complete.data.projectId}"
    )
    tabs = page.locator("#service-tabs [role=tab]")
    await tabs.nth(1).wait_for(timeout=WAIT_MS)
    assert await tabs.all_text_contents() == ["web :3000", "api :8000"]
    frame = page.frame_locator("#preview-frame")
    await frame.locator("li").first.wait_for(timeout=WAIT_MS)

    await tabs.nth(1).click()
    share = page.locator("#share-url")
    await page.wait_for_function(
        "url => document.querySelector('#share-url').value.startsWith(url)",
        arg=api_url,
        timeout=WAIT_MS,
    )
    assert await share.input_value() == f"{api_url}?token={complete.data.accessToken}"
    await frame.locator("body", has_text="/api/items").wait_for(timeout=WAIT_MS)
    # The log under the tab is the backend's own: uvicorn's, not Vite's.
    await page.wait_for_function(
        "document.querySelector('#log-tail').textContent.includes('Uvicorn running')",
        timeout=WAIT_MS,
    )
    await page.close()
