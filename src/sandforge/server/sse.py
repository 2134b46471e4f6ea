"""Server-Sent Event responses that end when the server stops.

An event stream lasts as long as its run, or forever (a project's live feed), so a
server waiting for its streams to close would never stop. Every stream here ends as
soon as shutdown begins, after a last frame saying so (`error`, code
`server_shutdown`, with the run's id), so clients know to reconnect rather than
believe the run failed.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping

from fastapi.responses import StreamingResponse

from ..events import Event, encode_sse, encode_sse_notice, server_shutdown

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


async def until_stopping(
    events: AsyncIterator[tuple[int, Event]], stopping: asyncio.Event
) -> AsyncIterator[tuple[int, Event] | None]:
    """`events`, then None once `stopping` is set (if it is set before they end)."""
    stop = asyncio.ensure_future(stopping.wait())
    following: asyncio.Future[tuple[int, Event]] | None = None
    try:
        while True:
            following = asyncio.ensure_future(anext(events))
            await asyncio.wait((following, stop), return_when=asyncio.FIRST_COMPLETED)
            if following.done():
                try:
                    yield following.result()
                except StopAsyncIteration:
                    return
                continue
            following.cancel()
            with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                await following
            yield None
            return
    finally:
        stop.cancel()
        if following is not None:
            # The client left mid-wait: end the wait, not leave it pending forever.
            following.cancel()


def sse_stream(
    events: AsyncIterator[tuple[int, Event]],
    stopping: asyncio.Event,
    run_id: str | None = None,
    headers: Mapping[str, str] | None = None,
    preamble: bytes = b"",
) -> StreamingResponse:
    async def frames() -> AsyncIterator[bytes]:
        if preamble:
            yield preamble
        async for item in until_stopping(events, stopping):
            if item is None:
                yield encode_sse_notice(server_shutdown(run_id))
                return
            yield encode_sse(*item)

    return StreamingResponse(
        frames(), media_type="text/event-stream", headers={**SSE_HEADERS, **(headers or {})}
    )
