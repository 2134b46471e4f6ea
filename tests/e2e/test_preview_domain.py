"""The preview iframe with the default preview domain (`localhost`), pages at 127.0.0.1.

Page and preview are then different sites. A SameSite=Lax cookie is neither
stored nor sent inside a cross-site iframe, so the server sets the preview's
token cookie as `SameSite=None; Secure; Partitioned` (a CHIPS cookie;
http://*.localhost counts as a secure context), and the frame authenticates.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from .conftest import UI_TIMEOUT_MS, ConsoleErrors, Server, start_server, stop_server


@pytest.fixture
def default_domain_server(tmp_path: Path) -> Iterator[Server]:
    server = start_server(tmp_path / "data", preview_domain="localhost", page_host="127.0.0.1")
    yield server
    stop_server(server)


def test_iframe_preview_with_default_domain(
    default_domain_server: Server, page: Page, console_errors: ConsoleErrors
) -> None:
    console_errors.allow(r"status of 401")  # the frame's "This preview is private"
    page.goto(f"{default_domain_server.base_url}/create-daytona")
    page.get_by_label("Describe your app").fill("Create a calculator with a modern design")
    page.get_by_role("button", name="Generate").click()
    expect(page.locator(".complete-card")).to_be_visible(timeout=UI_TIMEOUT_MS)
    share = page.get_by_label("Share link").input_value()
    assert share.startswith("http://3000-pj")
    heading = page.frame_locator("#preview-frame").get_by_role("heading", level=1)
    expect(heading).to_have_text("Calculator", timeout=30_000)
