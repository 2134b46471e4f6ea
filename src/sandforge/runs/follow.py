"""Following a run from any replica: replay from the store, then live from the bus.

Events are published on the bus only once stored, and carry the seq the store gave
them, so this reader keeps the last seq it yielded and takes only the next one: a
message it has seen is skipped, and a gap (a dropped message) or a silence sends it
back to the store. A run the store says has ended, with nothing more stored, ends
the stream even if its terminal event never arrived (its writes were given up).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from ..events import Event, from_json, is_terminal
from ..store.repo import Store
from .bus import EventBus

RECHECK_S = 2.0
"""After this long without a live event, the store is read again."""


async def follow_stored(
    store: Store, bus: EventBus, run_id: str, after: int = 0
) -> AsyncIterator[tuple[int, Event]]:
    queue = bus.watch(run_id)  # before the replay, so nothing falls between the two
    last = max(after, 0)
    try:
        while True:
            for seq, body in await store.events_after(run_id, last):
                last, event = seq, from_json(body)
                yield seq, event
                if is_terminal(event):
                    return
            if (await store.get_run(run_id)).state != "running":
                if not await store.events_after(run_id, last):
                    return
                continue
            while True:
                try:
                    seq, body = await asyncio.wait_for(queue.get(), RECHECK_S)
                except TimeoutError:
                    break
                if seq <= last:
                    continue
                if seq > last + 1:
                    break  # a message went missing: the store has it
                last, event = seq, from_json(body)
                yield seq, event
                if is_terminal(event):
                    return
    finally:
        bus.unwatch(run_id, queue)
