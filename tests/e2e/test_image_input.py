"""Images with a prompt: attached or pasted, sent to a model that reads images as image blocks,
stored with the turn and shown in its history; a model that reads none refuses them clearly."""

from __future__ import annotations

import base64
import re

from playwright.sync_api import Page, expect

from tests.fakes.model_apis import FakeAnthropic

from .conftest import UI_TIMEOUT_MS, ConsoleErrors, Server, screenshot
from .wire_model import user_blocks


def sketch(page: Page) -> bytes:
    """A real PNG: a screenshot of a small drawing."""
    page.set_content('<div style="width:120px;height:80px;background:#7c3aed"></div>')
    return page.locator("div").screenshot()


def test_an_attached_image_reaches_the_model_as_an_image_block(
    wire_server: Server, anthropic_fake: FakeAnthropic, page: Page
) -> None:
    png = sketch(page)
    page.goto(f"{wire_server.base_url}/create")
    page.locator("#start-attach").set_input_files(
        {"name": "sketch.png", "mimeType": "image/png", "buffer": png}
    )
    chip = page.locator("#start-attachments .attach-chip")
    expect(chip).to_have_count(1)
    expect(chip).to_contain_text("sketch.png")
    page.get_by_label("Describe your app").fill("Build a counter app like this sketch")
    screenshot(page, "image-attached")

    sent = len(anthropic_fake.requests)
    page.get_by_role("button", name="Generate").click()
    expect(page.locator(".complete-card")).to_be_visible(timeout=UI_TIMEOUT_MS)
    first = anthropic_fake.requests[sent].json
    images = [b for b in user_blocks(first["messages"][-1]) if b["type"] == "image"]
    assert images == [
        {
            "type": "image",
            "source": {
                "type": "base64",
                "media_type": "image/png",
                "data": base64.b64encode(png).decode(),
            },
        }
    ]
    expect(page.locator("#start-attachments .attach-chip")).to_have_count(0)

    # Stored with the turn: a reload shows it from the server.
    page.reload()
    shown = page.locator(".turn .msg-images img")
    expect(shown).to_have_count(1)
    expect(shown).to_have_attribute("src", re.compile(r"/api/runs/\w+/images/0$"))
    page.wait_for_function(
        "img => img.complete && img.naturalWidth === 120", arg=shown.element_handle()
    )
    screenshot(page, "image-in-history")


PASTE = """([data]) => {
  const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
  const transfer = new DataTransfer();
  transfer.items.add(new File([bytes], "pasted.png", { type: "image/png" }));
  const init = { clipboardData: transfer, bubbles: true, cancelable: true };
  document.querySelector("#prompt").dispatchEvent(new ClipboardEvent("paste", init));
}"""


def test_a_model_that_reads_no_images_refuses_them(
    offline_server: Server, page: Page, console_errors: ConsoleErrors
) -> None:
    console_errors.allow(r"status of 400")
    png = sketch(page)
    with offline_server.client() as client:
        projects_before = len(client.get("/api/projects").json()["projects"])
    page.goto(f"{offline_server.base_url}/create")
    page.evaluate(PASTE, [base64.b64encode(png).decode()])
    expect(page.locator("#start-attachments .attach-chip")).to_contain_text("pasted.png")
    page.get_by_label("Describe your app").fill("Build a counter app like this")
    page.get_by_role("button", name="Generate").click()
    error = page.locator("#generate-error")
    expect(error).to_contain_text("The model offline does not read images")
    expect(error).to_have_attribute("data-code", "images_not_supported")
    # Nothing was started, and the image is still there to remove or send elsewhere.
    expect(page.locator(".turn")).to_have_count(0)
    with offline_server.client() as client:
        assert len(client.get("/api/projects").json()["projects"]) == projects_before
    page.get_by_role("button", name="Remove pasted.png").click()
    expect(page.locator("#start-attachments .attach-chip")).to_have_count(0)
    screenshot(page, "image-refused")
