"""Keeping the sandboxes in bounds: the cap on running ones, stopping the idle and deleting
the long stopped. Each acts under the project's lock (the same locks as `Projects`), so
it never races a run starting or a preview opening."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict

from ..config import Settings
from ..runs.supervisor import Supervisor
from ..sandbox import (
    Sandbox,
    SandboxError,
    SandboxInfo,
    SandboxNotFound,
    SandboxProvider,
    SandboxState,
)
from ..sandbox.fleet import SandboxFleet
from ..store.errors import ProjectNotFound
from ..store.records import ProjectRecord
from ..store.repo import Store
from .errors import TooManySandboxes

log = logging.getLogger(__name__)


class SandboxUpkeep:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        fleet: SandboxFleet,
        supervisor: Supervisor,
        locks: defaultdict[str, asyncio.Lock],
    ) -> None:
        self.settings = settings
        self.store = store
        self.fleet = fleet
        self.supervisor = supervisor
        self._locks = locks
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        if self.settings.idle_stop_minutes > 0:
            self._tasks.append(asyncio.create_task(self._stop_idle_sandboxes()))
        if self.settings.idle_delete_days > 0:
            self._tasks.append(asyncio.create_task(self._delete_stopped_sandboxes()))

    async def aclose(self) -> None:
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def make_room(self) -> None:
        """Keep to SANDFORGE_MAX_SANDBOXES: at the limit, stop the sandbox idle the longest (its
        files stay; opening its project starts it again), and refuse only when every running
        sandbox is in use."""
        running = await self.fleet.running()
        limit = self.settings.max_sandboxes
        if len(running) < limit:
            return
        to_stop = len(running) - limit + 1
        busy = self.supervisor.busy_sandboxes()
        for info in sorted(running, key=self.fleet.idle_for, reverse=True):
            lock = self._locks[info.labels.get("project", info.id)]
            # Never wait for another project's lock while this one's is held: two projects
            # making room for each other would wait forever.
            if info.id in busy or lock.locked():
                continue
            async with lock:
                with contextlib.suppress(SandboxError):
                    await self.fleet.stop(await self.fleet.find(info.id))
                    log.info("stopped sandbox %s to stay within %d sandboxes", info.id, limit)
                    to_stop -= 1
            if to_stop == 0:
                return
        raise TooManySandboxes(
            f"{len(running)} sandboxes are running, all of them in use, and the limit is "
            f"{limit} (SANDFORGE_MAX_SANDBOXES). Wait for a run to end, stop or delete a "
            "sandbox on the sandboxes page (or `sandforge sandboxes list`), or raise the limit."
        )

    async def delete_sandbox(self, project: ProjectRecord, sandbox: Sandbox) -> None:
        """Delete a project's sandbox; its files are in the store, and the next use of the
        project rebuilds one from them."""
        await self.fleet.delete(sandbox)
        self.fleet.changed(project.id)
        await self.store.record_sandbox(sandbox.id, sandbox.provider, project.id, "deleted")

    async def _stop_idle_sandboxes(self) -> None:
        """Stop local sandboxes idle for `idle_stop_minutes`; Daytona has its own auto-stop."""
        idle_after = self.settings.idle_stop_minutes * 60
        while True:
            await asyncio.sleep(min(60.0, max(idle_after / 4, 0.05)))
            try:
                await self._stop_idle_once(idle_after)
            except Exception:
                log.exception("the idle stop failed; it tries again later")

    async def _stop_idle_once(self, idle_after: float) -> None:
        busy = self.supervisor.busy_sandboxes()
        provider = self.fleet.provider("local")
        for info in await provider.list():
            if info.state != SandboxState.STARTED or info.id in busy:
                continue
            if self.fleet.idle_for(info) < idle_after:
                continue
            # Under the project's lock, so a preview starting it meanwhile wins.
            async with self._locks[info.labels.get("project", info.id)]:
                if self.fleet.idle_for(info) < idle_after:
                    continue
                with contextlib.suppress(SandboxError):
                    await self.fleet.stop(await provider.get(info.id))

    async def _delete_stopped_sandboxes(self) -> None:
        """Delete sandboxes stopped for `idle_delete_days` (SANDFORGE_IDLE_DELETE_DAYS)."""
        stopped_for = self.settings.idle_delete_days * 86400
        while True:
            await asyncio.sleep(min(3600.0, max(stopped_for / 4, 0.05)))
            try:
                await self.delete_stopped_sandboxes(stopped_for)
            except Exception:
                log.exception("deleting stopped sandboxes failed; it tries again later")

    async def delete_stopped_sandboxes(self, stopped_for_s: float) -> list[str]:
        """Delete the projects' sandboxes that have been stopped (and unused) for this long.

        Only a sandbox whose project has its files in the store goes: the project rebuilds
        one from them when it is opened again."""
        deleted = []
        for provider in self.fleet.configured():
            for info in await provider.list({"sandforge": "1"}):
                project_id = info.labels.get("project")
                if project_id is None or info.state == SandboxState.STARTED:
                    continue
                if await self._unused_for(info, project_id) < stopped_for_s:
                    continue
                async with self._locks[project_id]:
                    if await self._deletable(info.id, project_id, provider):
                        project = await self.store.get_project(project_id)
                        await self.delete_sandbox(project, await provider.get(info.id))
                        deleted.append(info.id)
        return deleted

    async def _unused_for(self, info: SandboxInfo, project_id: str) -> float:
        """Seconds since the sandbox was last used: its last touch, or its project's last
        change (a saved version), whichever is later."""
        with contextlib.suppress(ProjectNotFound):
            project = await self.store.get_project(project_id)
            return min(self.fleet.idle_for(info), time.time() - project.updated_at)
        return self.fleet.idle_for(info)

    async def _deletable(self, sandbox_id: str, project_id: str, provider: SandboxProvider) -> bool:
        """Still stopped, no run in it, and its project's files are in the store."""
        if self.supervisor.active_run(project_id) is not None:
            return False
        try:
            sandbox = await provider.get(sandbox_id)
            await self.store.get_project(project_id)
        except (SandboxNotFound, ProjectNotFound):
            return False
        if (await sandbox.info()).state == SandboxState.STARTED:
            return False
        return bool(await self.store.file_sizes(project_id))
