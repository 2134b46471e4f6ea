"""A request the server refuses shows the server's own error message in the page."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from .conftest import ConsoleErrors, Server, screenshot

# Chromium logs every 4xx response as a console error; that one is expected here.
REFUSED = r"Failed to load resource: the server responded with a status of 400"


@pytest.mark.parametrize(
    ("prompt", "message", "code"),
    [
        ("   \n  ", "the prompt (the last user message) is empty", "invalid_request"),
        ("", "the prompt (the last user message) is empty", "invalid_request"),
        ("x" * 20_001, "The prompt is 20001 characters; the limit is 20000", "prompt_too_large"),
    ],
    ids=["blank", "empty-without-required", "too-large"],
)
def test_refused_request_shows_the_server_error(
    offline_server: Server,
    page: Page,
    console_errors: ConsoleErrors,
    prompt: str,
    message: str,
    code: str,
) -> None:
    console_errors.allow(REFUSED)
    page.goto(f"{offline_server.base_url}/create-daytona")
    textarea = page.get_by_label("Describe your app")
    if not prompt:
        # Bypass the HTML `required` check, as a script or an old browser would.
        textarea.evaluate("el => el.removeAttribute('required')")
    textarea.fill(prompt)
    with page.expect_response("**/api/agent/stream-daytona") as answered:
        page.get_by_role("button", name="Generate").click()
    response = answered.value
    assert response.status == 400
    assert response.json()["error"]["code"] == code

    alert = page.locator("#generate-error")
    expect(alert).to_contain_text(message)
    expect(alert).to_contain_text(code)
    expect(alert).to_have_attribute("role", "alert")
    # Nothing started: the page stays on the form, with the prompt kept for editing.
    expect(page.locator("#session")).to_be_hidden()
    expect(textarea).to_have_value(prompt)
    expect(textarea).to_be_focused()
    if code == "prompt_too_large":
        expect(page.locator("#prompt-count")).to_have_text(re.compile(r"20,001 / 20,000"))
        expect(page.locator("#prompt-count")).to_have_class(re.compile("over"))
        screenshot(page, "create-daytona-error")
