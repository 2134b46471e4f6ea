"""The server is stopped on purpose (SIGTERM) mid-run: the page says it is shutting down,
shows no failure and no success meanwhile, and reconnects when the server is back."""

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
def stopping_server(tmp_path: Path) -> Iterator[list[Server]]:
    servers = [start_server(tmp_path / "data", model=SCRIPTED_MODEL)]
    yield servers
    for server in reversed(servers):
        stop_server(server)


def test_sigterm_mid_run_says_shutting_down_and_reconnects(
    stopping_server: list[Server], page: Page, console_errors: ConsoleErrors
) -> None:
    console_errors.allow(r"net::ERR_")  # requests made while the server is down fail
    server = stopping_server[0]
    page.goto(f"{server.base_url}/create-daytona")
    page.get_by_label("Describe your app").fill(f"Build a page {HANG_MARK}")
    page.get_by_role("button", name="Generate").click()
    turn = page.locator(".turn").first
    expect(turn.locator(".text-block")).to_contain_text("Thinking about it")

    server.process.send_signal(signal.SIGTERM)
    note = turn.locator(".conn-note")
    expect(note).to_contain_text("shutting down")
    server.process.wait(timeout=SHUTDOWN_TIMEOUT_S)
    expect(page.locator(".error-card")).to_have_count(0)
    expect(page.locator(".complete-card")).to_have_count(0)
    screenshot(page, "create-daytona-server-shutting-down")

    stopping_server.append(start_server(server.data_dir, model=SCRIPTED_MODEL, port=server.port))
    card = turn.locator(".error-card")
    expect(card).to_be_visible(timeout=UI_TIMEOUT_MS)
    expect(card).to_have_attribute("data-code", "interrupted")
    expect(page.locator(".complete-card")).to_have_count(0)
