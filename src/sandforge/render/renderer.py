"""The warm render browser: one contained Chromium per server, a fresh context per check.

Each of `concurrency` slots is a browser context's way out (its proxy port and its
allowlist, see proxy.py); a check takes a free slot, or waits in line for one. A slot
keeps a spare context with a blank page and a CDP session ready, made while nobody
waits, so a check starts at navigation. The browser is replaced after `recycle_after`
checks, and relaunched when it has died; a check it died under runs once more on the
new one.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from playwright.async_api import (
    Browser,
    BrowserContext,
    CDPSession,
    Page,
    Playwright,
    ViewportSize,
    async_playwright,
)
from playwright.async_api import Error as PlaywrightError

from ..config import Settings
from . import jail
from .errors import RenderUnavailable
from .observe import PageCheck
from .proxy import FilteringProxy, authority_of
from .report import DEFAULT_NOT_APP_MARKERS, RenderReport

VIEWPORT = ViewportSize(width=1280, height=800)
LAUNCH_TIMEOUT_MS = 30_000
PREVIEW_LABEL = re.compile(r"\d{1,5}-[a-z0-9][a-z0-9-]*")
"""`<port>-<id>`, the first label of a preview host (as the server's preview proxy reads it)."""
BROWSER_GONE = ("has been closed", "Target closed", "Connection closed")
"""How Playwright's errors say that the browser (or the page's target) went away."""


@dataclass(eq=False)
class _Generation:
    """One launch of the browser."""

    browser: Browser
    pidfile: Path
    uses: int = 0
    active: int = 0
    retired: bool = False
    closed: bool = False

    @property
    def alive(self) -> bool:
        return self.browser.is_connected()


@dataclass(eq=False)
class _Lease:
    generation: _Generation
    context: BrowserContext
    page: Page
    cdp: CDPSession


class Renderer:
    """Loads previews in a contained, warm Chromium and reports what each shows.

    `upstream` is where preview traffic goes: the sandforge server's own address, which
    routes by Host. A check admits only its URL's host and port.
    """

    def __init__(
        self,
        *,
        upstream: tuple[str, int],
        chromium: str | None = None,
        concurrency: int = 4,
        recycle_after: int = 100,
        timeout_s: float = 30.0,
        not_app_markers: tuple[str, ...] = DEFAULT_NOT_APP_MARKERS,
        preview_domain: str | None = None,
    ) -> None:
        self.upstream = upstream
        self.preview_domain = preview_domain
        """When set, only `<port>-<id>.<preview_domain>` URLs are checked, never the API's."""
        self.chromium = chromium
        self.concurrency = concurrency
        self.recycle_after = recycle_after
        self.timeout_s = timeout_s
        self.not_app_markers = not_app_markers
        self.chromium_sandbox = True
        """Whether Chromium's own sandbox is on (it is, unless the kernel refuses it)."""
        self.launches = 0
        self.executable: str | None = None
        """The browser binary in use, once started."""
        self._layout: jail.Layout | None = None
        self._lock_fd = -1
        self._proxy: FilteringProxy | None = None
        self._playwright: Playwright | None = None
        self._current: _Generation | None = None
        self._generations: list[_Generation] = []
        self._spares: list[_Lease | None] = [None] * concurrency
        self._free: asyncio.Queue[int] = asyncio.Queue()
        self._start_lock = asyncio.Lock()
        self._launch_lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing = False
        self._started = False

    @classmethod
    def from_settings(cls, settings: Settings) -> Renderer:
        """The renderer of the server these settings describe: it is the upstream."""
        host = settings.host
        if host in ("", "0.0.0.0", "localhost"):
            host = "127.0.0.1"
        elif host == "::":
            host = "::1"
        return cls(
            upstream=(host, settings.port),
            chromium=settings.chromium_path,
            concurrency=settings.render_concurrency,
            recycle_after=settings.render_recycle_after,
            timeout_s=settings.render_timeout_s,
            not_app_markers=tuple(settings.render_not_app_markers or DEFAULT_NOT_APP_MARKERS),
            preview_domain=settings.preview_domain,
        )

    async def __aenter__(self) -> Renderer:
        await self.start()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    # -- life -----------------------------------------------------------------------------------

    async def start(self) -> None:
        """Launch the browser and make every slot's spare; `check` calls it too."""
        async with self._start_lock:
            if self._started:
                return
            if self._closing:
                raise RenderUnavailable("The rendered check's browser is shut down.")
            chromium = await asyncio.to_thread(jail.find_render_chromium, self.chromium)
            problem = await asyncio.to_thread(jail.problem)
            if chromium is None:
                problem = problem or "Chromium is not installed (scripts/bootstrap installs it)"
            if problem is not None or chromium is None:
                raise RenderUnavailable(f"The rendered check cannot run: {problem}")
            self.executable = chromium
            try:
                await self._start(chromium)
            except BaseException:
                await self._teardown()
                raise
            self._started = True

    async def _start(self, chromium: str) -> None:
        await asyncio.to_thread(jail.sweep)
        layout, self._lock_fd = await asyncio.to_thread(jail.create)
        self._layout = layout
        await asyncio.to_thread(jail.prepare, layout, chromium, self.concurrency)
        self._proxy = FilteringProxy(layout.sockets, self.concurrency, self.upstream)
        await self._proxy.start()
        self._playwright = await async_playwright().start()
        await self._generation(use=False)
        await asyncio.gather(*(self._refill(slot) for slot in range(self.concurrency)))
        for slot in range(self.concurrency):
            self._free.put_nowait(slot)

    async def aclose(self) -> None:
        self._closing = True
        async with self._start_lock:
            while self._tasks:
                await asyncio.gather(*self._tasks, return_exceptions=True)
            await self._teardown()

    async def _teardown(self) -> None:
        for generation in list(self._generations):
            await self._close(generation)
        self._current = None
        self._spares = [None] * self.concurrency
        if self._playwright is not None:
            await self._playwright.stop()
            self._playwright = None
        if self._proxy is not None:
            await self._proxy.aclose()
            self._proxy = None
        if self._layout is not None:
            await asyncio.to_thread(shutil.rmtree, self._layout.root, True)
            self._layout = None
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1
        self._started = False

    # -- checks ---------------------------------------------------------------------------------

    async def check(
        self, url: str, *, screenshot_path: Path | None = None, timeout_s: float | None = None
    ) -> RenderReport:
        """Load `url` (a preview, with its token if it needs one) and report what it shows.

        Never raises: `report.error` says why the page could not be checked to the end,
        `report.unavailable` why the check could not run at all. `timeout_s` bounds the
        check itself, not its wait for a free slot. The screenshot, when asked for, is a PNG.
        """
        timeout_s = timeout_s or self.timeout_s
        report = RenderReport(url=url)
        try:
            authority = authority_of(url)
            if not self._is_preview(authority):
                report.unavailable = (
                    f"{url} is not a preview URL (<port>-<id>.{self.preview_domain})"
                )
                return report
            await self.start()
        except ValueError:
            report.unavailable = f"the rendered check loads previews over plain http, not {url}"
            return report
        except RenderUnavailable as exc:
            report.unavailable = exc.message
            return report
        slot = await self._free.get()
        lease: _Lease | None = None
        try:
            async with asyncio.timeout(timeout_s):
                for last_try in (False, True):
                    report = RenderReport(url=url)
                    lease = await self._take(slot)
                    self._allow(slot, authority)
                    try:
                        check = PageCheck(lease.page, lease.cdp, report)
                        await check.run(self.not_app_markers, screenshot_path, timeout_s)
                        break
                    except PlaywrightError as exc:
                        if last_try or not _browser_gone(exc, lease.generation):
                            raise
                    # The browser died under this check: once more, on a new one.
                    await self._end(slot, lease)
                    lease = None
        except TimeoutError:
            report.error = f"the page did not finish loading within {timeout_s:g} s"
        except PlaywrightError as exc:
            report.error = str(exc).strip().splitlines()[0]
        except RenderUnavailable as exc:
            report.unavailable = exc.message
        finally:
            self._background(self._release(slot, lease))
        return report

    def _is_preview(self, authority: str) -> bool:
        if self.preview_domain is None:
            return True
        label, _, domain = authority.rsplit(":", 1)[0].partition(".")
        return domain == self.preview_domain.lower() and PREVIEW_LABEL.fullmatch(label) is not None

    async def _take(self, slot: int) -> _Lease:
        """The slot's spare if it is still good, else a new context; counts one use."""
        lease, self._spares[slot] = self._spares[slot], None
        if lease is not None:
            generation = lease.generation
            current = generation is self._current and generation.alive
            if current and generation.uses < self.recycle_after:
                generation.uses += 1
                generation.active += 1
                return lease
            with contextlib.suppress(PlaywrightError):
                await lease.context.close()
        generation = await self._generation(use=True)
        generation.active += 1
        try:
            return await self._open(generation, slot)
        except BaseException:
            generation.active -= 1
            raise

    def _allow(self, slot: int, authority: str) -> None:
        if self._proxy is None:
            raise RenderUnavailable("The rendered check's browser is shut down.")
        self._proxy.allow(slot, authority)

    def _revoke(self, slot: int) -> None:
        if self._proxy is not None:
            self._proxy.revoke(slot)

    async def _end(self, slot: int, lease: _Lease) -> None:
        self._revoke(slot)
        with contextlib.suppress(PlaywrightError):
            await lease.context.close()
        generation = lease.generation
        generation.active -= 1
        if generation.retired and generation.active == 0:
            await self._close(generation)

    async def _release(self, slot: int, lease: _Lease | None) -> None:
        """After a check: close its context, make the slot's next spare, free the slot."""
        try:
            if lease is not None:
                await self._end(slot, lease)
            else:
                self._revoke(slot)
            if not self._closing:
                await self._refill(slot)
        finally:
            self._free.put_nowait(slot)

    async def _refill(self, slot: int) -> None:
        # A slot without a spare still works; its next check makes a context itself.
        with contextlib.suppress(PlaywrightError, RenderUnavailable):
            self._spares[slot] = await self._open(await self._generation(use=False), slot)

    async def _open(self, generation: _Generation, slot: int) -> _Lease:
        context = await generation.browser.new_context(
            proxy={"server": f"http://127.0.0.1:{jail.slot_port(slot)}"},
            viewport=VIEWPORT,
            accept_downloads=False,
        )
        try:
            page = await context.new_page()
            cdp = await context.new_cdp_session(page)
            await cdp.send("Runtime.enable")
        except BaseException:
            with contextlib.suppress(PlaywrightError):
                await context.close()
            raise
        return _Lease(generation, context, page, cdp)

    # -- the browser ----------------------------------------------------------------------------

    async def _generation(self, *, use: bool) -> _Generation:
        """The current browser, launched anew when it died or served its checks."""
        async with self._launch_lock:
            current = self._current
            if current is None or not current.alive or current.uses >= self.recycle_after:
                if current is not None:
                    current.retired = True
                    if current.active == 0:
                        self._background(self._close(current))
                current = self._current = await self._launch()
            if use:
                current.uses += 1
            return current

    async def _launch(self) -> _Generation:
        if self._closing or self._playwright is None or self._layout is None:
            raise RenderUnavailable("The rendered check's browser is shut down.")
        self.launches += 1
        pidfile = self._layout.pidfile(self.launches)
        options: dict[str, Any] = {
            "executable_path": str(self._layout.launcher),
            "args": list(jail.CHROMIUM_ARGS),
            "headless": True,
            "env": {jail.PIDFILE_ENV: str(pidfile)},
            # The default context is never used; should anything use it, it reaches nothing.
            "proxy": {"server": f"http://127.0.0.1:{jail.DEAD_PORT}"},
            "timeout": LAUNCH_TIMEOUT_MS,
        }
        chromium = self._playwright.chromium
        try:
            browser = await chromium.launch(chromium_sandbox=self.chromium_sandbox, **options)
        except PlaywrightError as exc:
            if not self.chromium_sandbox or "sandbox" not in str(exc).lower():
                raise RenderUnavailable(f"The render browser did not start: {exc}") from exc
            # Chromium's sandbox needs user namespaces inside ours; where the kernel
            # refuses them, our sandbox alone contains it.
            self.chromium_sandbox = False
            try:
                browser = await chromium.launch(chromium_sandbox=False, **options)
            except PlaywrightError as again:
                raise RenderUnavailable(f"The render browser did not start: {again}") from again
        generation = _Generation(browser, pidfile)
        self._generations.append(generation)
        return generation

    async def _close(self, generation: _Generation) -> None:
        if generation.closed:
            return
        generation.closed = True
        with contextlib.suppress(PlaywrightError):
            await generation.browser.close()
        self._generations.remove(generation)

    def _background(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- for tests and diagnostics ----------------------------------------------------------------

    async def browser_pids(self) -> list[int]:
        """Every process of the running browsers (bwrap and all of its descendants)."""
        pidfiles = [g.pidfile for g in self._generations if not g.closed]
        return await asyncio.to_thread(_descendants, pidfiles)


def _browser_gone(exc: PlaywrightError, generation: _Generation) -> bool:
    # Playwright may report the closed pipe before it marks the browser disconnected.
    return not generation.alive or any(sign in str(exc) for sign in BROWSER_GONE)


def _descendants(pidfiles: list[Path]) -> list[int]:
    roots = set()
    for pidfile in pidfiles:
        with contextlib.suppress(OSError, ValueError):
            roots.add(int(pidfile.read_text()))
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            stat = Path(entry.path, "stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry.name))
    found = []
    pending = [pid for pid in roots if Path(f"/proc/{pid}").exists()]
    while pending:
        pid = pending.pop()
        found.append(pid)
        pending.extend(children.get(pid, []))
    return sorted(found)
