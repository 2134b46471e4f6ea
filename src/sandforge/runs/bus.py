"""Redis pub/sub between replicas: stored events, queue wake-ups and requests to a replica.

An event is published only after it is stored, so a reader that replays from the store
and then listens here misses nothing and, deduplicating by seq, sees nothing twice.
Pub/sub may drop messages (a reconnect, a slow reader): readers treat a gap or a long
silence as a cue to read the store again, so the bus only makes them prompt.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from typing import Any

import redis.asyncio as redis
from redis.exceptions import RedisError

from ..events import Event, from_json

log = logging.getLogger(__name__)

RECONNECT_S = 0.5

ProjectListener = Callable[[str, Event], None]
Handler = Callable[[dict[str, Any]], None]


class EventBus:
    def __init__(self, url: str, prefix: str) -> None:
        self.redis = redis.from_url(url)
        self._events = f"{prefix}:events"
        self._wake = f"{prefix}:queue"
        self._control = f"{prefix}:control"
        self._followers: dict[str, set[asyncio.Queue[tuple[int, str]]]] = {}
        self.on_project_event: ProjectListener = lambda project_id, event: None
        self.on_wake: Callable[[], None] = lambda: None
        self.on_control: Handler = lambda message: None
        self._listener: asyncio.Task[None] | None = None
        self._subscribed = asyncio.Event()

    async def start(self) -> None:
        self._listener = asyncio.create_task(self._listen(), name="event bus")
        await asyncio.wait_for(self._subscribed.wait(), 10)

    async def aclose(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
        await self.redis.aclose()

    async def ping(self) -> bool:
        try:
            return bool(await self.redis.ping())
        except (RedisError, OSError):
            return False

    # -- publishing ------------------------------------------------------------------------------

    async def publish_event(self, run_id: str, project_id: str, seq: int, body: str) -> None:
        """Tell every replica about event `seq` of a run (after it is stored). A failure is
        only logged: readers find the event in the store at their next look."""
        message = json.dumps({"run": run_id, "project": project_id, "seq": seq, "body": body})
        try:
            await self.redis.publish(self._events, message)
        except (RedisError, OSError) as exc:
            log.warning("event bus: event %d of run %s not published: %s", seq, run_id, exc)

    async def wake(self) -> None:
        """A run was queued (or a slot freed): replicas with room look at the queue."""
        await self.redis.publish(self._wake, b"")

    async def control(self, message: dict[str, Any]) -> None:
        """A request to the replica that holds something (a run to cancel)."""
        await self.redis.publish(self._control, json.dumps(message))

    # -- following -------------------------------------------------------------------------------

    def watch(self, run_id: str) -> asyncio.Queue[tuple[int, str]]:
        """Events of `run_id` published from now on, as (seq, body)."""
        queue: asyncio.Queue[tuple[int, str]] = asyncio.Queue()
        self._followers.setdefault(run_id, set()).add(queue)
        return queue

    def unwatch(self, run_id: str, queue: asyncio.Queue[tuple[int, str]]) -> None:
        followers = self._followers.get(run_id)
        if followers is not None:
            followers.discard(queue)
            if not followers:
                del self._followers[run_id]

    async def _listen(self) -> None:
        while True:
            try:
                async with self.redis.pubsub() as pubsub:
                    await pubsub.subscribe(self._events, self._wake, self._control)
                    self._subscribed.set()
                    async for message in pubsub.listen():
                        if message["type"] == "message":
                            self._dispatch(message["channel"].decode(), message["data"])
            except (RedisError, OSError) as exc:
                log.warning("event bus: %s; reconnecting", exc)
                await asyncio.sleep(RECONNECT_S)

    def _dispatch(self, channel: str, data: bytes) -> None:
        try:
            if channel == self._events:
                message = json.loads(data)
                run_id, seq, body = message["run"], int(message["seq"]), message["body"]
                for queue in self._followers.get(run_id, ()):
                    queue.put_nowait((seq, body))
                self.on_project_event(message["project"], from_json(body))
            elif channel == self._wake:
                self.on_wake()
            else:
                self.on_control(json.loads(data))
        except Exception:
            log.exception("event bus: a message on %s could not be handled", channel)
