"""What the rendered check saw, in the terms the repair loop and the UI need."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

DEFAULT_NOT_APP_MARKERS = (
    "sandforge preview",
    "Index of /",
    "Directory listing for /",
    "Daytona Preview - Warning",
    "Preview URL Warning",
)
"""Text that marks a page as not the app: sandforge's own proxy error pages, directory
listings (nginx/Apache, Python's http.server), Daytona's browser warning interstitial."""

MAX_ENTRIES = 50
"""Per list; a page that logs in a loop must not make the report unbounded."""


@dataclass
class SourceError:
    """An uncaught exception or a console error, with where it came from when known."""

    message: str
    url: str | None = None
    line: int | None = None
    """1-based, as editors and stack traces show it."""
    column: int | None = None

    def where(self, origin: str) -> str:
        """`/src/App.tsx:12:5` for the app's own files, the full URL for others."""
        if not self.url:
            return ""
        parts = urlsplit(self.url)
        own = f"{parts.scheme}://{parts.netloc}" == origin
        place = (parts.path or "/") if own else self.url.split("?", 1)[0]
        if self.line is not None:
            place += f":{self.line}"
            if self.column is not None:
                place += f":{self.column}"
        return place

    def to_json(self) -> dict[str, Any]:
        return {"message": self.message, "url": self.url, "line": self.line, "column": self.column}


@dataclass
class RenderReport:
    url: str = ""
    status: int | None = None
    title: str = ""
    blank: bool = False
    not_app: str | None = None
    """The marker that shows the page is not the app (an interstitial, a listing...)."""
    exceptions: list[SourceError] = field(default_factory=list)
    console_errors: list[SourceError] = field(default_factory=list)
    failed_requests: list[str] = field(default_factory=list)
    """The app's own requests (same origin as the page) that failed."""
    third_party_requests: list[str] = field(default_factory=list)
    """Failed requests to other origins; the check's browser reaches only the preview,
    so every one of these fails there, whatever a user's browser would do."""
    screenshot: str | None = None
    error: str | None = None
    """Why the page could not be loaded or checked to the end (a timeout, a crash...)."""
    unavailable: str | None = None
    """Why the check could not run at all (no bwrap or Chromium here...): no fault of the app,
    so not among its problems."""

    @property
    def origin(self) -> str:
        parts = urlsplit(self.url)
        return f"{parts.scheme}://{parts.netloc}"

    @property
    def ok(self) -> bool:
        return self.unavailable is None and not self.problems()

    def add_exception(self, error: SourceError) -> None:
        if len(self.exceptions) < MAX_ENTRIES:
            self.exceptions.append(error)

    def add_console_error(self, error: SourceError) -> None:
        if len(self.console_errors) < MAX_ENTRIES:
            self.console_errors.append(error)

    def add_failed_request(self, url: str, line: str) -> None:
        parts = urlsplit(url)
        own = f"{parts.scheme}://{parts.netloc}" == self.origin
        target = self.failed_requests if own else self.third_party_requests
        if len(target) < MAX_ENTRIES and line not in target:
            target.append(line)

    def problems(self) -> list[str]:
        """Each thing wrong with the page, in words a model or a person can act on.

        Each reads "<kind>: <detail>", with the file and line where known."""
        if self.unavailable:
            return []
        if self.error:
            return [f"Page did not load: {self.error}"]
        problems = []
        if self.not_app:
            problems.append(f"Not the app: the preview shows a page containing {self.not_app!r}")
        elif self.status is not None and self.status >= 400:
            problems.append(f"HTTP error: the page answered {self.status}")
        for error in self.exceptions:
            problems.append(_located("Uncaught exception", error, self.origin))
        for error in self.console_errors:
            problems.append(_located("Console error", error, self.origin))
        for request in self.failed_requests:
            problems.append(f"Failed request: {request}")
        if self.blank and not self.not_app:
            problems.append("Blank page: nothing is visible in <body>")
        return problems

    def summary(self) -> str:
        if self.unavailable:
            return f"Rendered check: could not run ({self.unavailable})"
        problems = self.problems()
        if not problems:
            return "Rendered check: the page renders"
        if len(problems) == 1:
            return f"Rendered check: {problems[0]}"
        return f"Rendered check: {len(problems)} problems, first: {problems[0]}"

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "status": self.status,
            "title": self.title,
            "blank": self.blank,
            "notApp": self.not_app,
            "exceptions": [error.to_json() for error in self.exceptions],
            "consoleErrors": [error.message for error in self.console_errors],
            "consoleErrorDetails": [error.to_json() for error in self.console_errors],
            "failedRequests": self.failed_requests,
            "thirdPartyRequests": self.third_party_requests,
            "problems": self.problems(),
            "screenshot": self.screenshot,
            "error": self.error,
            "unavailable": self.unavailable,
        }


def _located(kind: str, error: SourceError, origin: str) -> str:
    where = error.where(origin)
    return f"{kind}: {error.message}" + (f" (at {where})" if where else "")


def find_marker(markers: tuple[str, ...], title: str, text: str) -> str | None:
    """The first marker found in the page's title or visible text, ignoring case."""
    haystack = f"{title}\n{text}".casefold()
    return next((marker for marker in markers if marker.casefold() in haystack), None)
