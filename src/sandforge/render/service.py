"""The server's one warm renderer, lent to generation workers over a unix socket.

The browser must be warm (one per server, a fresh context per check) and contained
(started as its own uid, which takes the server's privileges), so it lives in the server
process, not in the short-lived workers that run the pipeline. A worker asks for a check
with one message on `<data dir>/render.sock` (mode 0600, in the wire format of
sandbox/wire.py) and gets the report back as JSON.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path

from ..sandbox import wire
from .remote import MESSAGE_BYTES
from .renderer import Renderer

log = logging.getLogger(__name__)


class RenderService:
    def __init__(self, renderer: Renderer, path: Path) -> None:
        self.renderer = renderer
        self.path = path
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        self._server = await wire.serve_private(self.path, self._answer, MESSAGE_BYTES)
        # Warm: the first check of a run should not pay for the browser's launch.
        asyncio.get_running_loop().create_task(self._warm())

    async def _warm(self) -> None:
        try:
            await self.renderer.start()
        except Exception:
            log.exception("the render browser did not start; checks will say why")

    async def aclose(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        await self.renderer.aclose()
        with contextlib.suppress(FileNotFoundError):
            await asyncio.to_thread(self.path.unlink)

    async def _answer(self, request: wire.Message) -> wire.Message:
        if request.get("op") != "check":
            raise wire.Failure("bad_request", f"unknown op {request.get('op')!r}")
        try:
            url = str(request["url"])
            screenshot = Path(str(request["screenshot"]))
            timeout_s = float(request.get("timeout_s") or self.renderer.timeout_s)
        except (KeyError, TypeError, ValueError) as exc:
            raise wire.Failure("bad_request", f"a malformed check request: {exc}") from exc
        report = await self.renderer.check(url, screenshot_path=screenshot, timeout_s=timeout_s)
        return wire.ok(report=report.to_json())
