"""The server goes away mid-run: the page says so, never claims success, and picks up again."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from .conftest import (
    SCRIPTED_MODEL,
    SHUTDOWN_TIMEOUT_S,
    UI_TIMEOUT_MS,
    ConsoleErrors,
    Server,
    screenshot,
    start_server,
    stop_server,
)
from .scripted_model import HANG_MARK


@pytest.fixture
def doomed_server(tmp_path: Path) -> Iterator[list[Server]]:
    """A server of its own, to kill; the test appends the one it brings back in its place."""
    servers = [start_server(tmp_path / "data", model=SCRIPTED_MODEL)]
    yield servers
    for server in reversed(servers):  # the live one first: both share the data dir
        stop_server(server)


def test_server_gone_mid_run(
    doomed_server: list[Server], page: Page, console_errors: ConsoleErrors
) -> None:
    # Every request made while the server is down fails; that is the point of this test.
    console_errors.allow(r"net::ERR_")
    server = doomed_server[0]
    page.goto(f"{server.base_url}/create-daytona")
    page.get_by_label("Describe your app").fill(f"Build a page {HANG_MARK}")
    page.get_by_role("button", name="Generate").click()
    turn = page.locator(".turn").first
    expect(turn.locator(".text-block")).to_contain_text("Thinking about it")

    # The server dies (a crash, or Ctrl+C pressed twice): its streams end without a final event.
    server.process.send_signal(signal.SIGKILL)
    server.process.wait(timeout=SHUTDOWN_TIMEOUT_S)

    # The page says the connection is lost and offers to reconnect; nothing looks like success.
    banner = page.locator("#conn-banner")
    expect(banner).to_be_visible()
    expect(banner).to_contain_text("Lost the connection to the sandforge server")
    note = turn.locator(".conn-note")
    expect(note).to_be_visible()
    expect(note).to_contain_text("Lost the connection")
    expect(note.get_by_role("button", name="Reconnect now")).to_be_visible()
    expect(page.locator("#run-badge")).to_have_text("offline")
    expect(page.locator("#preview-status")).to_have_text("offline")
    expect(page.locator("#preview-overlay")).to_contain_text("not answering")
    expect(page.locator(".complete-card")).to_have_count(0)
    screenshot(page, "create-daytona-server-gone")

    # "Reconnect now" asks at once; the server is still down, so the page still says so.
    with page.expect_request("**/api/health"):
        banner.get_by_role("button", name="Reconnect now").click()
    expect(banner).to_be_visible()

    # The server comes back: the page reconnects by itself and shows how the run really ended.
    doomed_server.append(start_server(server.data_dir, model=SCRIPTED_MODEL, port=server.port))
    card = turn.locator(".error-card")
    expect(card).to_be_visible(timeout=UI_TIMEOUT_MS)
    expect(card).to_have_attribute("data-code", "interrupted")
    expect(card).to_contain_text("The server stopped during this run")
    expect(banner).to_be_hidden()
    expect(note).to_be_hidden()
    expect(page.locator("#run-badge")).to_have_text("failed")
    expect(page.locator("#preview-status")).not_to_have_text("offline")
    expect(page.locator(".complete-card")).to_have_count(0)
    screenshot(page, "create-daytona-server-back")
