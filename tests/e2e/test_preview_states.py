"""The preview panel never contradicts itself while a run builds, checks and finishes an app."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from .conftest import UI_TIMEOUT_MS, Server
from .scripted_model import DEFAULT_HEADING

# Samples the panel many times a second (in the page itself, so no moment is missed between
# two looks from the test) and keeps every state in which its parts disagree.
WATCH_PANEL = """() => {
  if (window.top !== window) return;  // not inside the preview frame
  window.contradictions = [];
  const sample = () => {
    const badge = document.getElementById('preview-status');
    const overlay = document.getElementById('preview-overlay');
    const share = document.getElementById('share-url').value;
    const covered = overlay.hidden ? '' : overlay.innerText.replace(/\\s+/g, ' ').trim();
    const state = { badge: badge.textContent, covered, share };
    if (badge.textContent === 'ready' && (!share || covered.startsWith('Building your app'))) {
      window.contradictions.push(state);
    }
  };
  document.addEventListener('DOMContentLoaded', () => setInterval(sample, 25));
}"""


def test_ready_badge_always_comes_with_the_link_and_the_app(
    scripted_server: Server, page: Page
) -> None:
    page.add_init_script(script=f"({WATCH_PANEL})()")
    page.goto(f"{scripted_server.base_url}/create-daytona")
    page.get_by_label("Describe your app").fill("Build a counter app to watch")
    page.get_by_role("button", name="Generate").click()
    expect(page.locator(".complete-card")).to_be_visible(timeout=UI_TIMEOUT_MS)

    # Finished: the badge, the overlay and the link all say the same thing.
    expect(page.locator("#preview-status")).to_have_text("ready", timeout=UI_TIMEOUT_MS)
    expect(page.locator("#preview-overlay")).to_be_hidden()
    expect(page.get_by_label("Share link")).not_to_have_value("")
    expect(page.frame_locator("#preview-frame").locator("h1")).to_have_text(DEFAULT_HEADING)
    # And at no moment on the way did "ready" sit beside "Building your app" or an empty link.
    assert page.evaluate("window.contradictions") == []
