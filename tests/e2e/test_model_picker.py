"""The model picker: it lists the configured and allowed models, the choice is saved per project
and reaches the model endpoint, and the badge shows the model that ran."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from tests.fakes.model_apis import FakeAnthropic

from .conftest import UI_TIMEOUT_MS, Server, screenshot
from .wire_model import DEFAULT_MODEL, OTHER_MODEL


def test_the_pickers_choice_reaches_the_model_endpoint(
    wire_server: Server, anthropic_fake: FakeAnthropic, page: Page
) -> None:
    page.goto(f"{wire_server.base_url}/create")
    picker = page.locator("#model-start")
    expect(picker.locator("option")).to_have_text(
        [f"anthropic:{DEFAULT_MODEL} (default)", f"anthropic:{OTHER_MODEL}"]
    )
    expect(picker).to_have_value(f"anthropic:{DEFAULT_MODEL}")
    picker.select_option(f"anthropic:{OTHER_MODEL}")
    screenshot(page, "picker-start")

    sent = len(anthropic_fake.requests)
    page.get_by_label("Describe your app").fill("Build a counter app")
    page.get_by_role("button", name="Generate").click()
    expect(page.locator(".complete-card")).to_be_visible(timeout=UI_TIMEOUT_MS)
    assert anthropic_fake.requests[sent].json["model"] == OTHER_MODEL
    expect(page.locator(".complete-card .meta").first).to_contain_text(f"anthropic:{OTHER_MODEL}")
    expect(page.locator("#model-pill")).to_contain_text(f"anthropic:{OTHER_MODEL}")

    # Saved with the project: a reload shows it, and the follow-up uses it.
    page.reload()
    in_project = page.locator("#model-followup")
    expect(in_project).to_have_value(f"anthropic:{OTHER_MODEL}")
    in_project.select_option(f"anthropic:{DEFAULT_MODEL}")
    expect(page.locator(".toast")).to_contain_text([f"next runs use anthropic:{DEFAULT_MODEL}"])
    screenshot(page, "picker-project")

    sent = len(anthropic_fake.requests)
    follow_up = page.get_by_label("Ask for a change")
    follow_up.fill("Change the heading to Default Again")
    follow_up.press("Control+Enter")
    expect(page.locator(".complete-card")).to_have_count(2, timeout=UI_TIMEOUT_MS)
    assert anthropic_fake.requests[sent].json["model"] == DEFAULT_MODEL
    expect(page.locator("#model-pill")).to_contain_text(f"anthropic:{DEFAULT_MODEL}")

    # Only what the allow-list names can be chosen.
    project_id = page.url.split("project=")[1]
    with wire_server.client() as client:
        response = client.patch(
            f"/api/projects/{project_id}", json={"model": "anthropic:claude-not-allowed"}
        )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "model_not_allowed"
