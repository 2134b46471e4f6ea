"""A prompt the page or the server refuses: a message in human words, never a raw error code."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, Request, expect

from .conftest import ConsoleErrors, Server, screenshot

# Chromium logs every 4xx response as a console error; that one is expected here.
REFUSED = r"Failed to load resource: the server responded with a status of 400"
RAW_CODE = re.compile(r"\b[a-z]+_[a-z_]+\b")  # invalid_request, prompt_too_large, ...


@pytest.mark.parametrize("prompt", ["   \n  ", ""], ids=["blank", "empty-without-required"])
def test_empty_prompt_is_refused_before_sending(
    offline_server: Server, page: Page, prompt: str
) -> None:
    posted: list[Request] = []
    page.on("request", lambda r: posted.append(r) if r.method == "POST" else None)
    page.goto(f"{offline_server.base_url}/create-daytona")
    textarea = page.get_by_label("Describe your app")
    if not prompt:
        # Bypass the HTML `required` check, as a script or an old browser would.
        textarea.evaluate("el => el.removeAttribute('required')")
    textarea.fill(prompt)
    page.get_by_role("button", name="Generate").click()

    alert = page.locator("#generate-error")
    expect(alert).to_have_attribute("role", "alert")
    expect(alert).to_contain_text("Describe what to build first")
    expect(alert).not_to_contain_text(RAW_CODE)
    # Nothing was sent and nothing started: the page stays on the form, ready to type.
    assert posted == []
    expect(page.locator("#session")).to_be_hidden()
    expect(textarea).to_have_value(prompt)
    expect(textarea).to_be_focused()
    if prompt:
        screenshot(page, "create-daytona-empty-prompt")


def test_refused_request_shows_the_server_message_in_words(
    offline_server: Server, page: Page, console_errors: ConsoleErrors
) -> None:
    console_errors.allow(REFUSED)
    page.goto(f"{offline_server.base_url}/create-daytona")
    textarea = page.get_by_label("Describe your app")
    prompt = "x" * 20_001
    textarea.fill(prompt)
    with page.expect_response("**/api/agent/stream-daytona") as answered:
        page.get_by_role("button", name="Generate").click()
    response = answered.value
    assert response.status == 400
    assert response.json()["error"]["code"] == "prompt_too_large"

    alert = page.locator("#generate-error")
    expect(alert).to_contain_text("The prompt is 20001 characters; the limit is 20000")
    expect(alert).not_to_contain_text("prompt_too_large")
    expect(alert).to_have_attribute("role", "alert")
    # Nothing started: the page stays on the form, with the prompt kept for editing.
    expect(page.locator("#session")).to_be_hidden()
    expect(textarea).to_have_value(prompt)
    expect(textarea).to_be_focused()
    expect(page.locator("#prompt-count")).to_have_text(re.compile(r"20,001 / 20,000"))
    expect(page.locator("#prompt-count")).to_have_class(re.compile("over"))
    screenshot(page, "create-daytona-error")
