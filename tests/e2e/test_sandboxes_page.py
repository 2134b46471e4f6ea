"""/sandboxes: each sandbox's state, age and preview link; stop, start and delete."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from .conftest import UI_TIMEOUT_MS, Server, screenshot


def test_stop_start_and_delete(offline_server: Server, page: Page) -> None:
    keep = offline_server.generate("Create a todo app with dark mode")[-1]["data"]
    gone = offline_server.generate("Create a calculator with a modern design")[-1]["data"]

    page.goto(f"{offline_server.base_url}/sandboxes")
    expect(page.get_by_role("heading", level=1)).to_have_text("Sandboxes")
    table = page.get_by_role("table")
    row = table.locator(f'tr[data-id="{gone["sandboxId"]}"]')
    other = table.locator(f'tr[data-id="{keep["sandboxId"]}"]')
    expect(row).to_be_visible()
    expect(other).to_be_visible()
    expect(row.locator(".badge")).to_have_text("started")
    expect(row.locator("td").nth(2)).to_have_text(re.compile(r"^\d+(s|m \d\ds)$"))
    # The preview link opens the app: it carries the access token from the run.
    link = row.get_by_role("link", name=gone["previewUrl"])
    expect(link).to_have_attribute("href", f"{gone['previewUrl']}?token={gone['accessToken']}")
    screenshot(page, "sandboxes")

    row.get_by_role("button", name=f"Stop {gone['sandboxId']}").click()
    expect(row.locator(".badge")).to_have_text("stopped", timeout=UI_TIMEOUT_MS)
    expect(page.locator(".toast").last).to_contain_text("Stopped")
    row.get_by_role("button", name=f"Start {gone['sandboxId']}").click()
    expect(row.locator(".badge")).to_have_text("started", timeout=UI_TIMEOUT_MS)

    # Delete asks first; cancelling keeps it.
    row.get_by_role("button", name=f"Delete {gone['sandboxId']}").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text(gone["sandboxId"])
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_be_hidden()
    expect(row).to_be_visible()

    row.get_by_role("button", name=f"Delete {gone['sandboxId']}").click()
    dialog.get_by_role("button", name="Delete").click()
    expect(row).to_have_count(0, timeout=UI_TIMEOUT_MS)
    expect(other).to_be_visible()
    assert gone["sandboxId"] not in offline_server.sandbox_ids()
    assert keep["sandboxId"] in offline_server.sandbox_ids()
    screenshot(page, "sandboxes-after-delete")
