"""Helpers for the reliability tests: a stream followed in the background, bounded waits."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx

from sandforge.events import Event, decode_sse, to_json
from sandforge.store.repo import Store

Events = list[tuple[int, Event]]


class Follower:
    """An SSE stream read in the background, so a test can act while the run goes on."""

    def __init__(self) -> None:
        self.events: Events = []
        self.headers: httpx.Headers = httpx.Headers()
        self.status = 0
        self.cut = False
        """The server closed the stream before its end (a server stopping may)."""
        self._changed = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None
        self._opened = asyncio.Event()

    @classmethod
    async def start(
        cls, client: httpx.AsyncClient, method: str, path: str, body: Any = None
    ) -> Follower:
        follower = cls()
        follower._task = asyncio.create_task(follower._read(client, method, path, body))
        await asyncio.wait_for(follower._opened.wait(), 60)
        assert follower.status == 200, follower.status
        return follower

    async def _read(self, client: httpx.AsyncClient, method: str, path: str, body: Any) -> None:
        try:
            async with client.stream(method, path, json=body, timeout=None) as response:
                self.status, self.headers = response.status_code, response.headers
                self._opened.set()
                async for item in decode_sse(response.aiter_lines()):
                    async with self._changed:
                        self.events.append(item)
                        self._changed.notify_all()
        except httpx.TransportError:
            self.cut = True
        finally:
            self._opened.set()
            async with self._changed:
                self._changed.notify_all()

    @property
    def ended(self) -> bool:
        return self._task is not None and self._task.done()

    async def wait_for(self, predicate: Callable[[Events], bool], timeout: float) -> None:
        """Wait (bounded) until `predicate(events)` holds; fails if the stream ends first."""

        async def until() -> None:
            async with self._changed:
                while not predicate(self.events):
                    assert not self.ended, f"the stream ended first: {self.events[-3:]}"
                    await self._changed.wait()

        await asyncio.wait_for(until(), timeout)

    async def end(self, timeout: float) -> Events:
        """The whole stream, once it has ended (bounded)."""
        assert self._task is not None
        await asyncio.wait_for(asyncio.shield(self._task), timeout)
        return self.events

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task


@contextlib.asynccontextmanager
async def following(
    client: httpx.AsyncClient, method: str, path: str, body: Any = None
) -> AsyncIterator[Follower]:
    follower = await Follower.start(client, method, path, body)
    try:
        yield follower
    finally:
        await follower.aclose()


def messages(events: Events) -> int:
    return sum(1 for _, e in events if e.type == "message")


def has_progress(status: str) -> Callable[[Events], bool]:
    return lambda events: any(e.type == "progress" and e.data.status == status for _, e in events)


async def eventually(check: Callable[[], Any], timeout: float, interval: float = 0.2) -> Any:
    """Poll `check()` (sync or async) until it returns something truthy, for at most `timeout`."""

    async def poll() -> Any:
        while True:
            result = check()
            if asyncio.iscoroutine(result):
                result = await result
            if result:
                return result
            await asyncio.sleep(interval)

    return await asyncio.wait_for(poll(), timeout)


async def assert_stored_exactly(store: Store, run_id: str, events: Events) -> None:
    """The store holds exactly the events the stream carried: each once, in order."""
    stored = await store.events_after(run_id, 0)
    assert [seq for seq, _ in stored] == list(range(1, len(stored) + 1))
    assert stored == [(seq, to_json(event)) for seq, event in events]
