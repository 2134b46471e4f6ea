"""A project with several services: a preview tab for each, with its own status and log."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from sandforge.config import Settings
from sandforge.templates import FULLSTACK
from sandforge.templates.cache import TemplateCacheError, readonly_mounts

from .conftest import UI_TIMEOUT_MS, Server, screenshot


def test_each_service_has_a_preview_tab(offline_server: Server, page: Page) -> None:
    try:
        readonly_mounts(Settings(data_dir=offline_server.data_dir).template_cache, FULLSTACK)
    except TemplateCacheError:
        pytest.skip("the fullstack packages are not prepared: `sandforge templates prepare`")
    done = offline_server.generate("Create a reading list", projectType="fullstack")[-1]["data"]
    services = {s["name"]: s for s in done["services"]}
    assert services["web"]["previewUrl"] == done["previewUrl"]
    assert services["api"]["previewUrl"].startswith(f"http://8000-{done['projectId']}.")

    page.goto(f"{offline_server.base_url}/create-daytona?project={done['projectId']}")
    tabs = page.locator("#service-tabs")
    expect(tabs.get_by_role("tab")).to_have_text(["web :3000", "api :8000"])
    frame = page.frame_locator("#preview-frame")
    # The frontend's list comes from the backend's SQLite, through Vite's /api proxy.
    expect(frame.locator("li").first).to_have_text(
        "Read the code in backend/main.py", timeout=UI_TIMEOUT_MS
    )

    tabs.get_by_role("tab", name="api :8000").click()
    expect(page.locator("#share-url")).to_have_value(
        f"{services['api']['previewUrl']}?token={done['accessToken']}"
    )
    expect(frame.locator("body")).to_contain_text("/api/items", timeout=UI_TIMEOUT_MS)
    expect(page.locator("#preview-status")).to_have_text("ready", timeout=UI_TIMEOUT_MS)
    # The log is the backend's own: uvicorn's, not Vite's.
    expect(page.locator("#log-tail")).to_contain_text("Uvicorn", timeout=UI_TIMEOUT_MS)
    screenshot(page, "create-daytona-services")
