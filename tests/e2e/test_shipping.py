"""Shipping from the project view: download, publish (with the URL to copy), cost, settings."""

from __future__ import annotations

import zipfile

from playwright.sync_api import Browser, Page, expect

from .conftest import UI_TIMEOUT_MS, ConsoleErrors, Server, screenshot


def test_download_publish_cost_settings_and_github(
    offline_server: Server, page: Page, browser: Browser, console_errors: ConsoleErrors
) -> None:
    events = offline_server.generate("A shipping test page", projectName="Ship Me")
    project_id = events[-1]["data"]["projectId"]
    page.goto(f"{offline_server.base_url}/create-daytona?project={project_id}")

    # The turn says what it cost; the bar totals the project.
    expect(page.locator(".complete-card .meta")).to_contain_text("$0.00", timeout=UI_TIMEOUT_MS)
    expect(page.locator("#project-cost")).to_have_text("Total $0.00")

    download = page.get_by_role("link", name="Download")
    expect(download).to_have_attribute("href", f"/api/projects/{project_id}/export.zip")
    with page.expect_download() as downloading:
        download.click()
    assert downloading.value.suggested_filename == "ship-me-v1.zip"
    with zipfile.ZipFile(downloading.value.path()) as files:
        assert "index.html" in files.namelist()

    page.get_by_role("button", name="Publish").click()
    published = page.locator("#published-url")
    expect(published).to_be_visible(timeout=UI_TIMEOUT_MS)
    url = published.get_attribute("href")
    assert url == f"http://ship-me.apps.{offline_server.preview_domain}:{offline_server.port}/"
    expect(page.get_by_role("button", name="Republish")).to_be_visible()
    screenshot(page, "create-daytona-published")

    # Anyone can open it: a fresh context, no token, no cookie.
    visitor = browser.new_context()
    try:
        site = visitor.new_page()
        site.goto(url)
        expect(site.locator("h1")).to_be_visible()
    finally:
        visitor.close()

    page.get_by_role("button", name="Settings").click()
    page.get_by_placeholder("NAME", exact=True).fill("API_BASE")
    page.get_by_placeholder("value", exact=True).fill("https://example.test/secret")
    page.get_by_role("button", name="Save").click()
    expect(page.locator("#settings-dialog")).to_be_hidden()
    page.get_by_role("button", name="Settings").click()
    expect(page.locator("#env-list")).to_have_text("API_BASERemove")
    expect(page.locator("#settings-dialog")).not_to_contain_text("example.test")
    page.locator("#settings-dialog [data-close]").first.click()

    page.get_by_role("button", name="Unpublish").click()
    expect(published).to_be_hidden()
    expect(page.get_by_role("button", name="Publish")).to_be_visible()

    # This server has no GITHUB_TOKEN: the dialog says what to set.
    console_errors.allow(r"status of 409 .*/github")
    page.get_by_role("button", name="GitHub").click()
    page.get_by_role("textbox", name="Repository").fill("octo/ship-me")
    page.get_by_role("button", name="Push", exact=True).click()
    expect(page.locator("#github-error")).to_contain_text("GITHUB_TOKEN")
