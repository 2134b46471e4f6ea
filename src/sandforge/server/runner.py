"""Serving the app until a signal: a prompt, bounded stop on SIGTERM or Ctrl-C.

Process managers (systemd, Kubernetes, `docker stop`) send SIGTERM and, after a grace
period often of 10 s, SIGKILL. So the first signal begins the shutdown at once: event
streams get a last `server_shutdown` frame and close, no new run starts, and runs in
flight get `SANDFORGE_SHUTDOWN_GRACE_S` before they are marked interrupted; then the
sandboxes stop and the process exits. A second Ctrl-C exits at once: every sandbox,
worker and browser dies with the server (`--die-with-parent`, PDEATHSIG), and the next
start frees what they left (mounts, cgroups).

SIGUSR1 drains instead: no new run starts here (with replicas, the others take the
queue) and the runs in flight finish; SIGTERM once GET /api/health shows none running.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
from types import FrameType

import uvicorn

from .app import SandforgeApp

log = logging.getLogger(__name__)

CONNECTIONS_GRACE_S = 1
"""How long connections that are not event streams (a preview's websocket) may stay open
once shutdown begins; event streams close by themselves."""
KEEP_ALIVE_S = 20
"""How long an idle client connection stays open: longer than httpx's 5 s (the CLI's, the
replicas' forwarding client's), so a client never reuses a connection the server is just
closing, which fails the request with a read error."""
FORCED_EXIT_CODE = 130
DRAIN_SIGNAL = signal.SIGUSR1


class SandforgeServer(uvicorn.Server):
    def __init__(self, app: SandforgeApp, host: str, port: int) -> None:
        super().__init__(
            uvicorn.Config(
                app,
                host=host,
                port=port,
                log_level="warning",
                timeout_keep_alive=KEEP_ALIVE_S,
                timeout_graceful_shutdown=CONNECTIONS_GRACE_S,
            )
        )
        self.app = app
        self._loop: asyncio.AbstractEventLoop | None = None
        self._draining: set[asyncio.Task[None]] = set()

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        self._loop.add_signal_handler(DRAIN_SIGNAL, self._drain)
        try:
            await super().serve(sockets)
        finally:
            self._loop.remove_signal_handler(DRAIN_SIGNAL)

    def _drain(self) -> None:
        """SIGUSR1: take no new runs, finish those in flight (then stop it with SIGTERM)."""
        log.warning("SIGUSR1: draining; no new runs start here")
        task = asyncio.ensure_future(self.app.services.projects.drain())
        self._draining.add(task)
        task.add_done_callback(self._draining.discard)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self.should_exit:
            log.warning("a second signal: exiting at once")
            os._exit(FORCED_EXIT_CODE)
        super().handle_exit(sig, frame)
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self.app.begin_shutdown)

    def stop(self) -> None:
        """Shut down as on SIGTERM (for callers on the server's own loop)."""
        self.should_exit = True
        self.app.begin_shutdown()
