"""The rendered check: load a preview in headless Chromium and report what a user would see.

A dev server that answers 200 can still show a blank page or throw in its
script. This records console errors, failed requests, whether the page is
blank, and a screenshot.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CHROMIUM_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)
# Visible content: any text, or an element that shows something without text.
BLANK_SCRIPT = """() => {
  const body = document.body;
  if (!body) return true;
  if (body.innerText.trim().length > 0) return false;
  const shown = body.querySelectorAll('img,svg,canvas,video,iframe,input,button,select,textarea');
  return ![...shown].some((el) => {
    const r = el.getBoundingClientRect();
    return r.width > 0 && r.height > 0;
  });
}"""
SETTLE_TIMEOUT_MS = 5_000


def find_chromium(configured: str | None = None) -> str | None:
    if configured:
        return configured if Path(configured).exists() else None
    return shutil.which("chromium") or shutil.which("chromium-browser")


@dataclass
class RenderReport:
    status: int | None = None
    title: str = ""
    blank: bool = False
    console_errors: list[str] = field(default_factory=list)
    failed_requests: list[str] = field(default_factory=list)
    screenshot: str | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and not self.blank and not self.console_errors

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "status": self.status,
            "title": self.title,
            "blank": self.blank,
            "consoleErrors": self.console_errors,
            "failedRequests": self.failed_requests,
            "screenshot": self.screenshot,
            "error": self.error,
        }

    def summary(self) -> str:
        if self.error:
            return f"The rendered check could not run: {self.error}"
        problems = []
        if self.blank:
            problems.append("the page renders blank")
        if self.console_errors:
            first = self.console_errors[0]
            problems.append(f"{len(self.console_errors)} console error(s), first: {first}")
        if self.failed_requests:
            problems.append(f"{len(self.failed_requests)} failed request(s)")
        return "Rendered check: " + ("; ".join(problems) if problems else "the page renders")


def _console(report: RenderReport, kind: str, text: str, location: Mapping[str, object]) -> None:
    # Browsers ask for /favicon.ico on their own; its 404 is no fault of the app.
    if kind == "error" and not str(location.get("url", "")).endswith("/favicon.ico"):
        report.console_errors.append(text)


async def check_render(
    url: str, screenshot_path: Path, chromium: str, timeout_s: float = 30.0
) -> RenderReport:
    """Open `url` (with its token) in headless Chromium and report what it shows."""
    from playwright.async_api import Error as PlaywrightError
    from playwright.async_api import async_playwright

    report = RenderReport()
    try:
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(
                executable_path=chromium, args=list(CHROMIUM_ARGS), headless=True
            )
            try:
                page = await browser.new_page(viewport={"width": 1280, "height": 800})
                page.on("console", lambda m: _console(report, m.type, m.text, m.location))
                page.on("pageerror", lambda e: report.console_errors.append(str(e)))
                page.on(
                    "requestfailed",
                    lambda r: report.failed_requests.append(f"{r.method} {r.url}: {r.failure}"),
                )
                page.on(
                    "response",
                    lambda r: (
                        report.failed_requests.append(f"{r.request.method} {r.url}: {r.status}")
                        if r.status >= 400
                        else None
                    ),
                )
                response = await page.goto(url, wait_until="load", timeout=timeout_s * 1000)
                report.status = response.status if response else None
                # A page that keeps a socket open (HMR) never idles; "load" then suffices.
                with contextlib.suppress(PlaywrightError):
                    await page.wait_for_load_state("networkidle", timeout=SETTLE_TIMEOUT_MS)
                report.title = await page.title()
                report.blank = bool(await page.evaluate(BLANK_SCRIPT))
                await asyncio.to_thread(screenshot_path.parent.mkdir, parents=True, exist_ok=True)
                await page.screenshot(path=str(screenshot_path))
                report.screenshot = str(screenshot_path)
            finally:
                await browser.close()
    except PlaywrightError as exc:
        report.error = str(exc).splitlines()[0]
    return report
