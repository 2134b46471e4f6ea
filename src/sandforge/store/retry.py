"""Store operations tried again while the database is away (stopped, restarting, disk full).

Only the failures that pass by themselves (store/errors.py: TRANSIENT) are retried; any
other (a constraint violated, a bug) is raised at once, since trying again cannot help.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from .errors import TRANSIENT

log = logging.getLogger(__name__)

T = TypeVar("T")

FIRST_RETRY_S = 0.05
MAX_RETRY_S = 2.0


async def retrying(operation: Callable[[], Awaitable[T]], within_s: float, name: str) -> T:
    """`operation()`, tried again with backoff while the database is away, for at most
    `within_s` (0: once)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    delay = FIRST_RETRY_S
    while True:
        try:
            return await operation()
        except TRANSIENT as exc:
            if loop.time() + delay > deadline:
                raise
            log.warning("%s: %s; retrying in %.2fs", name, exc, delay)
        await asyncio.sleep(delay)
        delay = min(delay * 2, MAX_RETRY_S)
