"""One check on one page: load it, let it settle, and record what a user would see."""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path
from typing import Any

from playwright.async_api import CDPSession, ConsoleMessage, Page, Request, Response

from .report import RenderReport, SourceError, find_marker

PAGE_STATE_SCRIPT = """() => {
  const body = document.body;
  const text = body ? body.innerText : '';
  const media = 'img,svg,canvas,video,iframe,input,button,select,textarea';
  const shown = body ? body.querySelectorAll(media) : [];
  const visible = [...shown].some((el) => {
    const r = el.getBoundingClientRect();
    return r.width > 0 && r.height > 0;
  });
  return {title: document.title, text: text.slice(0, 5000), blank: !text.trim() && !visible};
}"""
"""Title, the start of the visible text, and whether nothing at all is visible."""
QUIET_S = 0.05
"""After `load`, the page counts as settled once no request has been open for this long."""
SETTLE_MAX_S = 2.0
"""...or after this long, for pages that keep a request open (long polling, SSE)."""
BLANK_GRACE_S = 1.0
"""A page that is blank once settled gets this long to render something (late frameworks)."""
POLL_S = 0.02
IGNORED_FAILURES = ("net::ERR_ABORTED",)
"""Requests the page itself cancelled (navigation, AbortController): not failures."""


class PageCheck:
    """Listens to one page while it loads and fills `report`; the CDP session has the
    Runtime domain enabled already (it reports uncaught exceptions)."""

    def __init__(self, page: Page, cdp: CDPSession, report: RenderReport) -> None:
        self.page = page
        self.cdp = cdp
        self.report = report
        self._open: set[Request] = set()
        self._last_activity = 0.0
        page.on("console", self._console)
        page.on("request", self._request)
        page.on("requestfinished", self._done)
        page.on("requestfailed", self._failed)
        page.on("response", self._response)
        cdp.on("Runtime.exceptionThrown", self._exception)

    async def run(
        self, markers: tuple[str, ...], screenshot_path: Path | None, timeout_s: float
    ) -> None:
        loop = asyncio.get_running_loop()
        response = await self.page.goto(
            self.report.url, wait_until="load", timeout=timeout_s * 1000
        )
        self.report.status = response.status if response is not None else None
        await self._settle(loop.time() + SETTLE_MAX_S)
        state = await self._state(loop.time() + BLANK_GRACE_S)
        self.report.title = state["title"]
        self.report.blank = bool(state["blank"])
        self.report.not_app = find_marker(markers, state["title"], state["text"])
        if screenshot_path is not None:
            shot = await self.cdp.send(
                "Page.captureScreenshot", {"format": "png", "optimizeForSpeed": True}
            )
            await asyncio.to_thread(_write, screenshot_path, base64.b64decode(shot["data"]))
            self.report.screenshot = str(screenshot_path)

    async def _settle(self, deadline: float) -> None:
        loop = asyncio.get_running_loop()
        while (now := loop.time()) < deadline:
            quiet_for = now - self._last_activity
            if not self._open and quiet_for >= QUIET_S:
                return
            await asyncio.sleep(POLL_S if self._open else QUIET_S - quiet_for)

    async def _state(self, deadline: float) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        while True:
            state: dict[str, Any] = await self.page.evaluate(PAGE_STATE_SCRIPT)
            if not state["blank"] or loop.time() >= deadline:
                return state
            await asyncio.sleep(POLL_S * 5)

    # -- events ---------------------------------------------------------------------------------

    def _touch(self) -> None:
        self._last_activity = asyncio.get_running_loop().time()

    def _request(self, request: Request) -> None:
        self._open.add(request)
        self._touch()

    def _done(self, request: Request) -> None:
        self._open.discard(request)
        self._touch()

    def _failed(self, request: Request) -> None:
        self._done(request)
        failure = request.failure or "failed"
        if not failure.startswith(IGNORED_FAILURES):
            self.report.add_failed_request(
                request.url, f"{request.method} {request.url}: {failure}"
            )

    def _response(self, response: Response) -> None:
        if response.status < 400:
            return
        url = response.url
        # Browsers ask for /favicon.ico on their own; its 404 is no fault of the app.
        if url.split("?", 1)[0].endswith("/favicon.ico"):
            return
        self.report.add_failed_request(url, f"{response.request.method} {url}: {response.status}")

    def _console(self, message: ConsoleMessage) -> None:
        # Chromium logs every failed load as "Failed to load resource"; failed requests
        # already say which and why.
        if message.type != "error" or message.text.startswith("Failed to load resource"):
            return
        location = message.location
        line = location.get("lineNumber")
        column = location.get("columnNumber")
        self.report.add_console_error(
            SourceError(
                message.text,
                location.get("url") or None,
                line + 1 if isinstance(line, int) else None,
                column + 1 if isinstance(column, int) else None,
            )
        )

    def _exception(self, params: dict[str, Any]) -> None:
        self.report.add_exception(exception_from_cdp(params.get("exceptionDetails", {})))


def exception_from_cdp(details: dict[str, Any]) -> SourceError:
    """An uncaught exception from CDP's exceptionDetails (0-based positions become 1-based).

    The top stack frame locates a thrown error best; a syntax error has no stack, and
    the details themselves carry the script and position.
    """
    exception = details.get("exception") or {}
    description = exception.get("description") or ""
    message = description.split("\n", 1)[0] if description else details.get("text", "Uncaught")
    if not description and "value" in exception:
        message = f"Uncaught {exception['value']!r}"
    frames = (details.get("stackTrace") or {}).get("callFrames") or []
    where: dict[str, Any] = frames[0] if frames and frames[0].get("url") else details
    line = where.get("lineNumber")
    column = where.get("columnNumber")
    return SourceError(
        message,
        where.get("url") or None,
        line + 1 if isinstance(line, int) else None,
        column + 1 if isinstance(column, int) else None,
    )


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
