"""The React + Vite project type: packages from the host cache, HMR through the proxy."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from sandforge.events import CompleteEvent
from sandforge.templates import REACT
from sandforge.templates.cache import package_mounts
from tests.conftest import LiveServer


@pytest.fixture
async def react_app(server: LiveServer) -> CompleteEvent:
    events = await server.stream(
        "/api/agent/stream-daytona",
        {
            "messages": [{"role": "user", "content": "Create a todo app with dark mode"}],
            "projectType": "react",
        },
    )
    complete = events[-1][1]
    assert isinstance(complete, CompleteEvent), complete
    return complete


async def test_the_sandbox_has_the_packages_without_network(
    server: LiveServer, react_app: CompleteEvent
) -> None:
    sandbox = await server.services.fleet.find(react_app.data.sandboxId)
    result = await sandbox.exec("node -e \"console.log(require('react/package.json').version)\"")
    assert result.exit_code == 0 and result.stdout.startswith("19.")
    # A model may change node_modules, but only its own layer over the cache: the cache
    # and every other sandbox keep the packages as prepared.
    write = await sandbox.exec("echo changed > node_modules/react/package.json")
    assert write.exit_code == 0, write
    cache = package_mounts(server.settings.template_cache, REACT, server.settings.rootfs.key)
    prepared = Path(cache["node_modules"]) / "react" / "package.json"
    assert json.loads(prepared.read_text())["name"] == "react"


async def test_chromium_renders_the_app_and_hmr_updates_it_without_a_reload(
    server: LiveServer, react_app: CompleteEvent, browser: Any
) -> None:
    page = await browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    await page.goto(f"{react_app.data.previewUrl}?token={react_app.data.accessToken}")
    heading = page.locator("h1")
    await heading.wait_for()
    assert await heading.text_content() == "Todo App"
    await page.evaluate("window.__sameDocument = true")

    sandbox = await server.services.fleet.find(react_app.data.sandboxId)
    source = (await sandbox.read_file("src/App.tsx")).decode()
    await sandbox.write_file("src/App.tsx", source.replace("Todo App", "Hot Reloaded").encode())

    await page.wait_for_function(
        "document.querySelector('h1').textContent === 'Hot Reloaded'", timeout=30_000
    )
    # The update came over Vite's websocket through the proxy: the page never reloaded.
    assert await page.evaluate("window.__sameDocument") is True
    assert errors == []


async def test_a_dev_server_that_crashes_at_start_is_an_error_with_its_log(
    make_server: Any,
) -> None:
    server: LiveServer = await make_server(
        model="factory:tests.scripted.scripted_models:broken_vite_config"
    )
    events = await server.stream(
        "/api/agent/stream-daytona",
        {"messages": [{"role": "user", "content": "Create a timer"}], "projectType": "react"},
    )
    last = events[-1][1]
    assert last.type == "error" and last.data.code == "dev_server_failed"
    assert "The dev server exited" in last.data.message
    assert "vite config exploded" in last.data.message
    assert server.sandbox_dirs() == []
