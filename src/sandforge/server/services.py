"""What the server holds for its lifetime, wired together: no logic of its own."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

from ..config import Settings
from ..projects.service import Projects
from ..render import find_chromium
from ..render.remote import socket_path as render_socket
from ..runs.replica import Replica, default_replica_id
from ..runs.supervisor import Supervisor
from ..sandbox.fleet import SandboxFleet
from ..store.repo import Store

if TYPE_CHECKING:
    from ..render.service import RenderService


class Services:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.fleet = SandboxFleet(settings)
        self._store: Store | None = None
        self._supervisor: Supervisor | None = None
        self._projects: Projects | None = None
        self.replica_id = settings.replica_id or default_replica_id()
        self.started_at = time.time()
        self.replica: Replica | None = None
        """With SANDFORGE_REDIS_URL: this process as one of several replicas."""
        self.stopping = asyncio.Event()
        """Set when shutdown begins (the first SIGTERM or Ctrl-C), before connections close."""
        self._runs_closed: asyncio.Future[None] | None = None
        self.render: RenderService | None = None
        """The warm, contained rendered check; None when it is off or Chromium is missing."""

    @property
    def store(self) -> Store:
        assert self._store is not None, "Services.start() has not run"
        return self._store

    @property
    def supervisor(self) -> Supervisor:
        assert self._supervisor is not None, "Services.start() has not run"
        return self._supervisor

    @property
    def projects(self) -> Projects:
        assert self._projects is not None, "Services.start() has not run"
        return self._projects

    async def start(self) -> None:
        await self.fleet.start()
        self._store = await Store.open(self.settings.database_url, self.settings.data_dir)
        self._supervisor = Supervisor(self.settings, self._store, self.fleet.touch)
        self._projects = Projects(self.settings, self._store, self.fleet, self._supervisor)
        if self.settings.redis_url is not None:
            # Runs marked running may be other replicas' now: the heartbeats end the dead's.
            self.replica = Replica(
                self.replica_id,
                self.settings,
                self._store,
                self._supervisor,
                self.local_sandbox_ids,
            )
            self._projects.attach_replica(self.replica)
            await self.replica.start()
        else:
            await self._supervisor.interrupt_orphans()
        self._supervisor.warm_up()
        await self._projects.start()
        if self.settings.render_check and find_chromium(self.settings.chromium_path):
            # Playwright (the `browser` extra) is needed only when the check is on.
            from ..render import Renderer
            from ..render.service import RenderService

            renderer = Renderer.from_settings(self.settings)
            self.render = RenderService(renderer, render_socket(self.settings))
            await self.render.start()

    async def local_sandbox_ids(self) -> list[str]:
        return [info.id for info in await self.fleet.provider("local").list()]

    def begin_shutdown(self) -> None:
        """Streams end and new runs are refused from now on; runs in flight get their grace
        in close(). Call it on the event loop (from a signal: `call_soon_threadsafe`)."""
        if self.stopping.is_set():
            return
        self.stopping.set()
        if self._projects is not None:
            self._projects.accepting = False
        if self.replica is not None:
            self.replica.stop_taking_runs()
        if self._supervisor is not None:
            # The runs' grace starts now, while connections drain, not after.
            self._runs_closed = asyncio.ensure_future(
                self._supervisor.close(self.settings.shutdown_grace_s)
            )

    async def close(self) -> None:
        if self.render is not None:
            await self.render.aclose()
        if self._projects is not None:
            await self._projects.aclose()
        if self._supervisor is not None:
            if self._runs_closed is None:
                self._runs_closed = asyncio.ensure_future(
                    self._supervisor.close(self.settings.shutdown_grace_s)
                )
            await self._runs_closed
        if self.replica is not None:
            await self.replica.aclose()
        await self.fleet.aclose()
        if self._store is not None:
            await self._store.close()
