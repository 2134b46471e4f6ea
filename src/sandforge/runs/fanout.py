"""Fan-out: a live run's numbered events for any number of followers, and project feeds.

A run's events live in memory while it runs (and a while after), so followers that
come and go replay from any seq without touching the store; the supervisor stores
them too, for replays after the run has left memory.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable

from ..events import Event, ProgressEvent, is_terminal


class RunLog:
    """The events of one run, numbered from 1, and a way to wait for the next."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.sandbox_id: str | None = None
        """The first sandbox a progress event named: the run's sandbox."""
        self._changed = asyncio.Condition()

    @property
    def ended(self) -> bool:
        return bool(self.events) and is_terminal(self.events[-1])

    @property
    def next_seq(self) -> int:
        return len(self.events) + 1

    async def append(self, event: Event) -> int:
        """Add `event` (nothing follows a terminal one) and wake the followers; its seq."""
        async with self._changed:
            if self.ended:
                raise RuntimeError("the run has already ended")
            if isinstance(event, ProgressEvent) and event.data.sandboxId and not self.sandbox_id:
                self.sandbox_id = event.data.sandboxId
            self.events.append(event)
            self._changed.notify_all()
            return len(self.events)

    def _has_news(self, seen: int) -> Callable[[], bool]:
        return lambda: seen < len(self.events)

    async def follow(self, after: int = 0) -> AsyncIterator[tuple[int, Event]]:
        """Events numbered from 1, starting after seq `after`, until the terminal one."""
        seq = max(after, 0)
        while True:
            while seq < len(self.events):
                seq += 1
                yield seq, self.events[seq - 1]
            if self.ended:
                return
            async with self._changed:
                await self._changed.wait_for(self._has_news(seq))

    def assistant_text(self) -> str:
        return "".join(e.data.content for e in self.events if e.type == "message")


def changes_files(event: Event) -> bool:
    """Whether the event says the project's files changed (a command may change them too)."""
    return event.type == "tool" and event.data.action != "read"


class ProjectFeeds:
    """Everyone viewing a project receives every event of its runs from when they joined."""

    def __init__(self) -> None:
        self._listeners: dict[str, set[asyncio.Queue[Event]]] = {}
        self._files_changed_at: dict[str, float] = {}

    def files_changed_at(self, project_id: str) -> float:
        """When a run last changed the project's files (0 if none has in this process): a page
        loaded before then is stale, whether or not it was listening at the time."""
        return self._files_changed_at.get(project_id, 0.0)

    def listen(self, project_id: str) -> asyncio.Queue[Event]:
        queue: asyncio.Queue[Event] = asyncio.Queue()
        self._listeners.setdefault(project_id, set()).add(queue)
        return queue

    def unlisten(self, project_id: str, queue: asyncio.Queue[Event]) -> None:
        listeners = self._listeners.get(project_id)
        if listeners is not None:
            listeners.discard(queue)
            if not listeners:
                del self._listeners[project_id]

    def notify(self, project_id: str, event: Event) -> None:
        if changes_files(event):
            self._files_changed_at[project_id] = time.time()
        for queue in self._listeners.get(project_id, ()):
            queue.put_nowait(event)
