"""A run's store writes, in order, retried while the database is away.

A run must end whatever fails, and a short database outage must not hang it: its
events reach followers from memory first, and the writes that mirror them in the
store queue up here and are retried with backoff until the database answers again,
or until a bound passes (then the run is marked interrupted at the next start-up,
which finds it still `running` in the store). A write that fails for any other reason
is logged and skipped at once: retrying cannot help it, and the writes behind it
must not wait on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from ..store.retry import retrying

log = logging.getLogger(__name__)

Write = Callable[[], Awaitable[object]]

GIVE_UP_AFTER_S = 300.0


class OrderedWriter:
    def __init__(self, name: str, give_up_after_s: float = GIVE_UP_AFTER_S) -> None:
        self.name = name
        self.give_up_after_s = give_up_after_s
        self._queue: asyncio.Queue[Write] = asyncio.Queue()
        self._task = asyncio.create_task(self._drain(), name=f"store writes of {name}")
        self.failed = False
        """A write was given up on: the store lags behind memory for this run."""

    def submit(self, write: Write) -> None:
        self._queue.put_nowait(write)

    @property
    def pending(self) -> int:
        return self._queue.qsize()

    async def flush(self, timeout: float) -> bool:
        """Wait until every submitted write is done (or given up); False on timeout."""
        if self._task.done():
            return self._queue.empty()
        try:
            await asyncio.wait_for(self._queue.join(), timeout)
        except TimeoutError:
            return False
        return True

    async def aclose(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _drain(self) -> None:
        while True:
            write = await self._queue.get()
            try:
                await self._with_retries(write)
            finally:
                self._queue.task_done()

    async def _with_retries(self, write: Write) -> None:
        try:
            await retrying(write, self.give_up_after_s, self.name)
        except Exception:
            log.exception("%s: giving up on a store write", self.name)
            self.failed = True
