"""A replica's heartbeat, from a thread of its own with a database connection of its own.

Liveness must not depend on how busy the replica is: a burst of runs on a starved
machine can keep its event loop (and its connection pool) busy for seconds, and a
heartbeat queued behind that work would make a working replica look dead and have its
runs interrupted. So the beat runs on its own loop and engine, and reads only plain
values the replica keeps up to date.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable

from ..store.db import make_engine
from ..store.replicas import Beat, ReplicaStore

log = logging.getLogger(__name__)


class Heartbeat:
    def __init__(
        self, url: str, interval_s: float, dead_after_s: float, beat: Callable[[], Beat]
    ) -> None:
        self.url = url
        self.interval_s = interval_s
        self.dead_after_s = dead_after_s
        self.beat = beat
        self.told_to_drain = False
        """The registry says this replica is to drain (someone asked through any replica)."""
        self._stopping = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="replica heartbeat", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping = True
        if self._loop is not None and self._wake is not None:
            self._loop.call_soon_threadsafe(self._wake.set)
        self._thread.join(timeout=5)

    def _run(self) -> None:
        asyncio.run(self._beats())

    async def _beats(self) -> None:
        self._wake = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        engine = make_engine(self.url)
        registry = ReplicaStore(engine, self.dead_after_s)
        try:
            while not self._stopping:
                try:
                    if await registry.heartbeat(self.beat()):
                        self.told_to_drain = True
                except Exception as exc:
                    log.warning("the heartbeat failed (%s); it tries again", exc)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.interval_s)
        finally:
            await engine.dispose()
