"""Browser tests: a real sandforge server in a subprocess, driven by Debian's Chromium.

Each server runs in its own data dir with real bwrap sandboxes. Pages are
opened at http://sandforge.localhost:<port>/ with previews at
http://3000-<id>.sandforge.localhost:<port>/ so page and preview are the same
site (see test_preview_domain.py for the default `localhost` preview domain).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Page,
    Playwright,
    Request,
    expect,
    sync_playwright,
)
from playwright.sync_api import Error as PlaywrightError

E2E_DIR = Path(__file__).resolve().parent
REPO = E2E_DIR.parents[1]
SCREENSHOTS = REPO / "artifacts" / "screenshots"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--host-resolver-rules=MAP *.localhost 127.0.0.1",
]
SCRIPTED_MODEL = "factory:scripted_model:build"
PAGE_HOST = "sandforge.localhost"
STARTUP_TIMEOUT_S = 90.0
SHUTDOWN_TIMEOUT_S = 60.0
RUN_TIMEOUT_S = 180.0
# Generous: two cores shared with other test suites.
UI_TIMEOUT_MS = 120_000
PREVIEW_SCRIPT = re.compile(r"https?://\d+-[a-z0-9]+\.")
"""A script served from a preview host (`3000-<id>.<domain>`)."""
SCRUBBED_ENV = ("ANTHROPIC_API_KEY", "OPENAI_API_KEY", "DAYTONA_API_KEY", "SANDFORGE_MODEL")

expect.set_options(timeout=UI_TIMEOUT_MS)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Server:
    """A sandforge server process and clients for it."""

    port: int
    data_dir: Path
    process: subprocess.Popen[bytes]
    log_path: Path
    page_host: str
    preview_domain: str

    @property
    def base_url(self) -> str:
        """Where the browser opens pages."""
        return f"http://{self.page_host}:{self.port}"

    @property
    def api_url(self) -> str:
        """Where Python talks to the API (glibc does not resolve *.localhost here)."""
        return f"http://127.0.0.1:{self.port}"

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.api_url, timeout=120)

    def log_tail(self, lines: int = 60) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def generate(self, prompt: str, **extra: Any) -> list[dict[str, Any]]:
        """Run one generation through the API and return its events."""
        body = {"messages": [{"role": "user", "content": prompt}], **extra}
        events: list[dict[str, Any]] = []
        with (
            self.client() as client,
            client.stream("POST", "/api/agent/stream-daytona", json=body) as response,
        ):
            assert response.status_code == 200, response.read()
            for line in response.iter_lines():
                if line.startswith("data:"):
                    events.append(json.loads(line[5:]))
        assert events and events[-1]["type"] == "complete", (events, self.log_tail())
        return events

    def runs(self) -> list[dict[str, Any]]:
        with self.client() as client:
            runs: list[dict[str, Any]] = client.get("/api/runs").json()["runs"]
            return runs

    def wait_for_run(self, run_id: str, timeout: float = RUN_TIMEOUT_S) -> dict[str, Any]:
        """Poll the run until it ends; returns its summary."""
        deadline = time.monotonic() + timeout
        with self.client() as client:
            while True:
                summary: dict[str, Any] = client.get(f"/api/runs/{run_id}").json()
                if summary["state"] != "running":
                    return summary
                assert time.monotonic() < deadline, f"run {run_id} still running"
                time.sleep(0.2)

    def sandbox_ids(self) -> list[str]:
        with self.client() as client:
            return [s["id"] for s in client.get("/api/sandboxes").json()["sandboxes"]]


def bwrap_processes(data_dir: Path, sandbox_ids: list[str]) -> list[int]:
    """PIDs of bwrap processes of this server: their command line names its data dir (no
    isolation) or one of its sandboxes (a fully isolated sandbox's mounts are named by id)."""
    found = []
    markers = [str(data_dir).encode(), *(sandbox_id.encode() for sandbox_id in sandbox_ids)]
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        parts = cmdline.split(b"\0")
        if parts and parts[0].endswith(b"bwrap") and any(m in cmdline for m in markers):
            found.append(int(entry.name))
    return found


def start_server(
    data_dir: Path,
    *,
    model: str | None = None,
    preview_domain: str = PAGE_HOST,
    page_host: str = PAGE_HOST,
    port: int | None = None,
) -> Server:
    """A server on `port` (a free one when None; a stopped server's, to bring it back)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    settings = (
        f"Settings(data_dir=Path({str(data_dir)!r}), port={port}, "
        f"preview_domain={preview_domain!r}, dev_server_ready_timeout_s=90)"
    )
    code = (
        "from pathlib import Path\n"
        "from sandforge.server.app import create_app\n"
        "from sandforge.server.runner import SandforgeServer\n"
        "from sandforge.config import Settings\n"
        f"SandforgeServer(create_app({settings}), '127.0.0.1', {port}).run()\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in SCRUBBED_ENV}
    env = {k: v for k, v in env.items() if not k.startswith("SANDFORGE_")}
    if model:
        env["SANDFORGE_MODEL"] = model
    existing = os.environ.get("PYTHONPATH")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(E2E_DIR), existing) if p)
    log_path = data_dir / "server.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-c", code],
            cwd=data_dir,  # so no developer .env is read
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    server = Server(port, data_dir, process, log_path, page_host, preview_domain)
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode}:\n{server.log_tail()}")
        try:
            response = httpx.get(f"{server.api_url}/api/health", timeout=2)
            if response.status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            stop_server(server)
            raise RuntimeError(f"the server did not answer /api/health:\n{server.log_tail()}")
        time.sleep(0.1)


def stop_server(server: Server) -> None:
    """SIGINT, so the lifespan stops the sandboxes; then check that no bwrap is left."""
    sandbox_ids: list[str] = []
    if server.process.poll() is None:
        with contextlib.suppress(httpx.HTTPError):
            sandbox_ids = server.sandbox_ids()
        server.process.send_signal(signal.SIGINT)
        try:
            server.process.wait(timeout=SHUTDOWN_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()
            raise AssertionError(f"the server ignored SIGINT:\n{server.log_tail()}") from None
    deadline = time.monotonic() + 15
    while (left := bwrap_processes(server.data_dir, sandbox_ids)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not left, f"bwrap processes outlived the server: {left}"


# Servers and the browser live for this package only: sync Playwright keeps an event loop
# running in the main thread while it is open, which the async tests elsewhere cannot share.
@pytest.fixture(scope="package")
def offline_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """No model configured: the offline scaffolder writes the starter (deterministic)."""
    server = start_server(tmp_path_factory.mktemp("offline"))
    yield server
    stop_server(server)


@pytest.fixture(scope="package")
def scripted_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The scripted model: streamed text deltas and write_file tool calls."""
    server = start_server(tmp_path_factory.mktemp("scripted"), model=SCRIPTED_MODEL)
    yield server
    stop_server(server)


@pytest.fixture(scope="package")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as pw:
        yield pw


@pytest.fixture(scope="package")
def browser(playwright: Playwright) -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is not installed")
    browser = playwright.chromium.launch(
        executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
    )
    yield browser
    browser.close()


@dataclass
class ConsoleErrors:
    """Console errors and uncaught exceptions of every page in a context."""

    messages: list[str] = field(default_factory=list)
    allowed: list[re.Pattern[str]] = field(default_factory=list)

    def allow(self, pattern: str) -> None:
        self.allowed.append(re.compile(pattern))

    def on_console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.messages.append(f"console: {message.text} ({message.location.get('url')})")

    def on_page_error(self, error: PlaywrightError) -> None:
        if PREVIEW_SCRIPT.search(error.stack or ""):
            # The generated app's own exception, not the page's: its rendered check reports
            # those, and while a run writes, the live preview runs a half-written app.
            return
        self.messages.append(f"pageerror: {error}")

    def watch(self, page: Page) -> None:
        page.on("console", self.on_console)
        page.on("pageerror", self.on_page_error)

    def unexpected(self) -> list[str]:
        return [m for m in self.messages if not any(p.search(m) for p in self.allowed)]

    def assert_none(self) -> None:
        assert self.unexpected() == [], "console errors:\n" + "\n".join(self.unexpected())


@pytest.fixture
def console_errors() -> ConsoleErrors:
    return ConsoleErrors()


def new_context(browser: Browser, errors: ConsoleErrors, **options: Any) -> BrowserContext:
    options.setdefault("viewport", {"width": 1440, "height": 900})
    context = browser.new_context(**options)
    context.set_default_timeout(UI_TIMEOUT_MS)
    context.set_default_navigation_timeout(UI_TIMEOUT_MS)
    context.on("page", errors.watch)
    return context


@pytest.fixture
def context(browser: Browser, console_errors: ConsoleErrors) -> Iterator[BrowserContext]:
    context = new_context(browser, console_errors, color_scheme="light")
    context.grant_permissions(["clipboard-read", "clipboard-write"])
    yield context
    context.close()
    console_errors.assert_none()


@pytest.fixture
def page(context: BrowserContext) -> Page:
    return context.new_page()


def request_json(request: Request) -> dict[str, Any]:
    """The JSON body the page sent."""
    body = request.post_data_json
    assert isinstance(body, dict), body
    return body


def screenshot(page: Page, name: str, *, full_page: bool = False) -> Path:
    """Save a screenshot under artifacts/screenshots/ (a test artifact, gitignored)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page, animations="disabled")
    return path
