"""A stopped sandbox starts again from the preview panel; a deleted one is rebuilt from there."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from .conftest import UI_TIMEOUT_MS, Server, screenshot


def test_start_a_stopped_sandbox_from_the_preview(offline_server: Server, page: Page) -> None:
    done = offline_server.generate("Create a weather app")[-1]["data"]
    with offline_server.client() as client:
        stopped = client.post(f"/api/sandboxes/{done['sandboxId']}/stop")
        assert stopped.status_code == 200, stopped.text
    key = done.get("projectId") or done["sandboxId"]
    page.goto(f"{offline_server.base_url}/create-daytona?project={key}")
    expect(page.locator(".turn")).to_have_count(1)
    expect(page.locator("#preview-status")).to_have_text("stopped", timeout=UI_TIMEOUT_MS)
    overlay = page.locator("#preview-overlay")
    expect(overlay).to_contain_text("This sandbox is stopped")
    screenshot(page, "create-daytona-stopped")
    overlay.get_by_role("button", name="Start sandbox").click()
    expect(page.locator("#preview-status")).to_have_text("ready", timeout=UI_TIMEOUT_MS)
    expect(page.frame_locator("#preview-frame").get_by_role("heading", level=1)).to_have_text(
        "Weather App", timeout=UI_TIMEOUT_MS
    )
    expect(overlay).to_be_hidden()


def test_rebuild_a_deleted_sandbox_from_the_preview(offline_server: Server, page: Page) -> None:
    done = offline_server.generate("Create a notes app")[-1]["data"]
    with offline_server.client() as client:
        deleted = client.delete(f"/api/sandboxes/{done['sandboxId']}")
        assert deleted.status_code == 204, deleted.text
    page.goto(f"{offline_server.base_url}/create-daytona?project={done['projectId']}")
    expect(page.locator(".turn")).to_have_count(1)
    expect(page.locator("#preview-status")).to_have_text("gone", timeout=UI_TIMEOUT_MS)
    overlay = page.locator("#preview-overlay")
    expect(overlay).to_contain_text("This sandbox is gone")
    screenshot(page, "create-daytona-sandbox-gone")
    overlay.get_by_role("button", name="Rebuild preview").click()
    expect(page.frame_locator("#preview-frame").get_by_role("heading", level=1)).to_have_text(
        "Notes App", timeout=UI_TIMEOUT_MS
    )
    expect(page.locator("#preview-status")).to_have_text("ready", timeout=UI_TIMEOUT_MS)
    expect(overlay).to_be_hidden()
    assert done["sandboxId"] not in offline_server.sandbox_ids()
