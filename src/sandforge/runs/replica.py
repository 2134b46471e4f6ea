"""This process as one of several replicas: its heartbeat, the queue it takes runs from,
the runs of dead replicas it ends, and the requests other replicas send it.

The heartbeat (runs/heartbeat.py, every SANDFORGE_REPLICA_HEARTBEAT_S) records this
replica's load and local sandboxes. The upkeep, as often, reads who else is alive and
ends the runs of replicas silent for longer than SANDFORGE_REPLICA_DEAD_AFTER_S: each
gets an `interrupted` error as its last stored event, published like any other, so its
readers anywhere see it. A queued run is taken when a slot frees here, when another
replica says one was queued, and at every upkeep (in case that word was lost).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import time
from collections.abc import Awaitable, Callable

from ..config import Settings
from ..events import error, to_json
from ..store.db import database_url
from ..store.replicas import Beat, ClaimedRun, EndedRun, ReplicaRecord, ReplicaStore
from ..store.repo import Store
from .bus import EventBus
from .heartbeat import Heartbeat
from .supervisor import CANCEL_WAIT_S, END_STORE_WAIT_S, Supervisor

log = logging.getLogger(__name__)

FORGET_AFTER_S = 3600.0
"""Replicas silent this long leave the registry."""
CANCEL_POLL_S = 0.1
PEERS_FRESH_S = 0.5

Launch = Callable[[ClaimedRun], Awaitable[None]]


def replica_dead(replica_id: str) -> str:
    return (
        f"The replica running this run ({replica_id}) stopped answering, so the run was "
        "interrupted. Everything it stored is kept; send the prompt again to continue "
        "on another replica."
    )


def _orphan_end(replica_id: str) -> str:
    return to_json(error(replica_dead(replica_id), code="interrupted"))


def default_replica_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


class Replica:
    def __init__(
        self,
        replica_id: str,
        settings: Settings,
        store: Store,
        supervisor: Supervisor,
        local_sandboxes: Callable[[], Awaitable[list[str]]],
    ) -> None:
        assert settings.redis_url is not None
        self.settings = settings
        self.id = replica_id
        self.address = settings.replica_address or f"http://{settings.host}:{settings.port}"
        self.started_at = time.time()
        self.store = store
        self.registry = ReplicaStore(store.engine, settings.replica_dead_after_s)
        self.heart = Heartbeat(
            database_url(settings.database_url, settings.data_dir),
            settings.replica_heartbeat_s,
            settings.replica_dead_after_s,
            self._beat,
        )
        self._sandboxes: list[str] = []
        self.bus = EventBus(settings.redis_url, settings.redis_prefix)
        self.supervisor = supervisor
        self.local_sandboxes = local_sandboxes
        self.launch: Launch | None = None
        """Turns a run taken from the queue into a live run here (set by Projects)."""
        self.peers: list[ReplicaRecord] = []
        """The live replicas, as of the last heartbeat."""
        self.draining = False
        self._peers_read_at = 0.0
        self._claimable = asyncio.Event()
        self._launching = 0
        self._stopped = False
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self.bus.on_project_event = self.supervisor.feeds.notify
        self.bus.on_wake = self._claimable.set
        self.bus.on_control = self._on_control
        self.supervisor.bus = self.bus
        self.supervisor.on_run_ended = self._claimable.set
        await self.bus.start()
        self._sandboxes = await self.local_sandboxes()
        await self.registry.heartbeat(self._beat())  # listed before the first request
        await self._read_peers()
        self.heart.start()
        self._spawn(self._ticks(), "replica upkeep")
        self._spawn(self._claims(), "replica claims")

    def stop_taking_runs(self) -> None:
        self._stopped = True

    async def aclose(self) -> None:
        """After the supervisor has closed (its runs' last events are published)."""
        self._stopped = True
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await asyncio.to_thread(self.heart.stop)
        with contextlib.suppress(Exception):
            await self.registry.leave(self.id)
        await self.bus.aclose()

    def _spawn(self, work: Awaitable[None], name: str) -> None:
        task = asyncio.ensure_future(work)
        task.set_name(name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- the registry ----------------------------------------------------------------------------

    @property
    def load(self) -> int:
        return self.supervisor.running + self._launching

    def _beat(self) -> Beat:
        """What the heartbeat says (called from its thread: plain values only)."""
        return Beat(
            id=self.id,
            address=self.address,
            started_at=self.started_at,
            capacity=self.settings.max_concurrent_runs,
            running=self.load,
            sandboxes=list(self._sandboxes),
        )

    async def _ticks(self) -> None:
        while True:
            await asyncio.sleep(self.settings.replica_heartbeat_s)
            try:
                await self._tick()
            except Exception:
                log.exception("replica %s: upkeep failed; it tries again", self.id)
            self._claimable.set()

    async def _tick(self) -> None:
        """Refresh what the heartbeat says and who is alive; end the dead's runs."""
        self._sandboxes = await self.local_sandboxes()
        if self.heart.told_to_drain and not self.draining:
            log.warning("replica %s: told to drain; it takes no new runs", self.id)
            self.draining = True
        await self._read_peers()
        for ended in await self.registry.end_orphans(_orphan_end):
            log.warning("run %s: replica %s is dead", ended.id, ended.replica_id)
            await self._published(ended)
        live_here = [r.id for r in self.supervisor.runs.values() if not r.done]
        for run_id in await self.registry.ended(live_here):
            # Taken for dead (too long silent): the others ended the run; stop it here.
            log.error("run %s was ended by another replica; stopping it here", run_id)
            self.supervisor.interrupt(run_id, replica_dead(self.id))
        await self.registry.forget_replicas(FORGET_AFTER_S)

    async def _published(self, ended: EndedRun) -> None:
        await self.bus.publish_event(ended.id, ended.project_id, ended.seq, ended.body)

    def owner_of(self, sandbox_id: str) -> ReplicaRecord | None:
        """The live replica holding this local sandbox, by the last heartbeat read."""
        return next((p for p in self.peers if sandbox_id in p.sandboxes), None)

    async def find_owner(self, sandbox_id: str) -> ReplicaRecord | None:
        """The live replica holding this local sandbox, asking the registry again (at most
        every PEERS_FRESH_S) if the last heartbeat read does not know it: it may be new."""
        owner = self.owner_of(sandbox_id)
        if owner is None and time.monotonic() - self._peers_read_at > PEERS_FRESH_S:
            await self._read_peers()
            owner = self.owner_of(sandbox_id)
        return owner

    async def find_holder(self, project_id: str, sandbox_id: str) -> ReplicaRecord | None:
        """`find_owner`, or, before the heartbeats list the sandbox, the live replica whose
        run made it."""
        owner = await self.find_owner(sandbox_id)
        if owner is not None:
            return owner
        runner = await self.registry.sandbox_runner(project_id, sandbox_id)
        return next((p for p in self.peers if p.id == runner), None)

    async def sandbox_holder(self, project_id: str, sandbox_id: str) -> str | None:
        """The replica a run of the project must go to: the one holding its local sandbox.
        The heartbeats may not list a sandbox made a moment ago; the run that made it
        says where it ran. (A dead holder is passed over when runs are taken.)"""
        owner = await self.find_owner(sandbox_id)
        if owner is not None:
            return owner.id
        return await self.registry.sandbox_runner(project_id, sandbox_id)

    async def _read_peers(self) -> None:
        self._peers_read_at = time.monotonic()
        self.peers = await self.registry.live_replicas()

    async def drain(self) -> None:
        """Take no new runs; those running here finish (the registry shows it draining)."""
        self.draining = True
        await self.registry.set_draining(self.id)

    # -- the queue -------------------------------------------------------------------------------

    async def enqueue(
        self, run_id: str, project_id: str, request: dict[str, object], affinity: str | None
    ) -> str | None:
        """Queue a run; the id of the project's run in flight instead, if it has one."""
        busy = await self.registry.enqueue(run_id, project_id, request, affinity)
        if busy is None:
            await self.bus.wake()
        return busy

    def _free_slots(self) -> int:
        if self._stopped or self.draining:
            return 0
        return self.settings.max_concurrent_runs - self.load

    async def _claims(self) -> None:
        while True:
            await self._claimable.wait()
            self._claimable.clear()
            try:
                while self._free_slots() > 0:
                    claimed = await self.registry.claim(self.id)
                    if claimed is None:
                        break
                    self._launching += 1
                    self._spawn(self._launch(claimed), f"launch run {claimed.id}")
            except Exception:
                log.exception("replica %s: taking runs from the queue failed", self.id)

    async def _launch(self, claimed: ClaimedRun) -> None:
        assert self.launch is not None, "Projects has not attached"
        try:
            await self.launch(claimed)
        except Exception as exc:
            log.exception("run %s could not start here", claimed.id)
            message = getattr(exc, "message", None) or str(exc)
            body = to_json(error(message, code=getattr(exc, "code", None) or "internal"))
            ended = await self.registry.end_taken(claimed.id, self.id, "failed", body)
            if ended is not None:
                await self._published(ended)
        finally:
            self._launching -= 1

    # -- cancelling a run wherever it is ---------------------------------------------------------

    async def cancel(self, run_id: str) -> None:
        """Cancel a run queued or running on another replica; wait (bounded) for its end."""
        body = to_json(error("The run was cancelled while queued.", code="cancelled"))
        ended = await self.registry.cancel_queued(run_id, body)
        if ended is not None:
            await self._published(ended)
            return
        await self.bus.control({"cancel": run_id})
        # The replica running it waits up to CANCEL_WAIT_S for the end; then it is stored.
        deadline = time.monotonic() + CANCEL_WAIT_S + END_STORE_WAIT_S
        while time.monotonic() < deadline:
            if (await self.store.get_run(run_id)).state != "running":
                return
            await asyncio.sleep(CANCEL_POLL_S)

    def _on_control(self, message: dict[str, object]) -> None:
        run_id = message.get("cancel")
        if isinstance(run_id, str) and run_id in self.supervisor.runs:
            self._spawn(self._cancel_here(run_id), f"cancel run {run_id}")

    async def _cancel_here(self, run_id: str) -> None:
        await self.supervisor.cancel(run_id)
