"""Every page: no console errors, light and dark, phone width, labels and keyboard order."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Browser, Page, expect

from .conftest import ConsoleErrors, Server, new_context, screenshot

PAGES = {"create-daytona": "/create-daytona", "create": "/create", "sandboxes": "/sandboxes"}

UNLABELLED = """() => [...document.querySelectorAll('input, select, textarea, button, a[href]')]
  .filter(el => el.offsetParent !== null && el.type !== 'hidden')
  .filter(el => {
    const label = el.getAttribute('aria-label') || el.getAttribute('aria-labelledby')
      || (el.labels && el.labels.length) || el.textContent.trim() || el.title;
    return !label;
  })
  .map(el => el.outerHTML.slice(0, 120))"""


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("name", list(PAGES))
def test_page_renders_cleanly(
    offline_server: Server,
    browser: Browser,
    console_errors: ConsoleErrors,
    name: str,
    scheme: str,
) -> None:
    offline_server.generate("Create a todo app with dark mode")  # something to list
    context = new_context(browser, console_errors, color_scheme=scheme)
    try:
        page = context.new_page()
        page.goto(f"{offline_server.base_url}{PAGES[name]}", wait_until="networkidle")
        expect(page.get_by_role("heading", level=1)).to_be_visible()
        if name != "sandboxes":
            expect(page.locator("#recent-list li").first).to_be_visible()
        else:
            expect(page.locator("#sandboxes tbody tr").first).to_have_attribute(
                "data-id", re.compile(r"^sb")
            )
        background = page.evaluate("getComputedStyle(document.body).backgroundColor")
        dark = page.evaluate("matchMedia('(prefers-color-scheme: dark)').matches")
        assert dark == (scheme == "dark")
        assert page.evaluate(UNLABELLED) == []
        screenshot(page, f"{name}-{scheme}")
        assert background  # rendered
    finally:
        context.close()
    console_errors.assert_none()


def test_phone_width(
    offline_server: Server, browser: Browser, console_errors: ConsoleErrors
) -> None:
    context = new_context(
        browser,
        console_errors,
        viewport={"width": 390, "height": 844},
        device_scale_factor=2,
        is_mobile=True,
        has_touch=True,
        color_scheme="dark",
    )
    try:
        page = context.new_page()
        page.goto(f"{offline_server.base_url}/create-daytona")
        expect(page.get_by_role("button", name="Generate")).to_be_visible()
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, "no horizontal scrolling on a phone"
        screenshot(page, "create-daytona-phone", full_page=True)
        page.get_by_label("Describe your app").fill("Create a calculator with a modern design")
        page.get_by_role("button", name="Generate").click()
        # A finished run shows its app; the chat is one tap away.
        expect(page.frame_locator("#preview-frame").get_by_role("heading", level=1)).to_have_text(
            "Calculator"
        )
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        page.get_by_role("button", name="Chat").click()
        expect(page.locator(".complete-card")).to_be_visible()
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        screenshot(page, "create-daytona-phone-session", full_page=True)
        page.goto(f"{offline_server.base_url}/sandboxes")
        expect(page.locator("#sandboxes tbody tr").first).to_be_visible()
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        screenshot(page, "sandboxes-phone", full_page=True)
    finally:
        context.close()
    console_errors.assert_none()


def test_keyboard_order_and_theme_toggle(offline_server: Server, page: Page) -> None:
    page.goto(f"{offline_server.base_url}/create-daytona")
    prompt = page.get_by_label("Describe your app")
    expect(prompt).to_be_focused()  # ready to type
    # Tab order follows the layout: prompt, type, where it runs, agents, attach, submit, then
    # the examples (the model picker is disabled with one model to pick).
    order = []
    for _ in range(9):
        page.keyboard.press("Tab")
        order.append(
            page.evaluate(
                "(() => { const e = document.activeElement; return e.id"
                " || e.getAttribute('value') || e.innerText.trim().split('\\n')[0]; })()"
            )
        )
    assert order == [
        "projectType",
        "sandbox-provider",
        "frontend-dev",
        "ui-designer",
        "backend-dev",
        "qa-tester",
        "start-attach-btn",
        "generate-btn",
        "Calculator",
    ], order
    page.keyboard.press("Enter")  # the focused example fills the prompt
    expect(prompt).to_have_value("Create a calculator with a modern design")
    expect(prompt).to_be_focused()

    # The skip link comes first; the theme toggle cycles system → light → dark and sticks.
    page.keyboard.press("Shift+Tab")
    toggle = page.locator("#theme-toggle")
    toggle.click()
    expect(page.locator("html")).to_have_attribute("data-theme", "light")
    toggle.click()
    expect(page.locator("html")).to_have_attribute("data-theme", "dark")
    page.reload()
    expect(page.locator("html")).to_have_attribute("data-theme", "dark")
    expect(toggle).to_have_attribute("aria-label", "Theme: dark. Switch to system")
    toggle.click()
    expect(page.locator("html")).not_to_have_attribute("data-theme", "dark")
