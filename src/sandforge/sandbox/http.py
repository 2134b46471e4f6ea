"""HTTP to a port inside a sandbox: one client factory for the preview proxy and the probes."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncGenerator
from dataclasses import dataclass

import httpcore
import httpx

from .base import Sandbox, Upstream
from .local.unix import NoFollowUnixBackend, connect_unix

# Most dev servers answer within a second: poll finely until then (a refused connect is
# cheap), then back off.
FAST_POLL_S = 0.01
FAST_POLL_FOR_S = 1.0
MAX_POLL_S = 0.5


class _UpstreamHeaders(httpx.Auth):
    """Sets the upstream's headers on every request, over any the caller set of the same name.

    On a 401 it asks the provider again (`Upstream.refresh`) and, if the headers changed,
    sends the request once more: a Daytona sandbox that restarted has a new preview token,
    and one refresh per restart is cheaper than asking before every request. Only a
    request without a streamed body can be sent twice.
    """

    def __init__(self, upstream: Upstream) -> None:
        self._upstream = upstream

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        request.headers.update(self._upstream.headers)
        response = yield request
        refresh = self._upstream.refresh
        if response.status_code != 401 or refresh is None:
            return
        if not isinstance(request.stream, httpx.ByteStream):
            return
        fresh = await refresh()
        if fresh.headers == self._upstream.headers:
            return
        self._upstream = fresh
        request.headers.update(fresh.headers)
        yield request


def upstream_client(upstream: Upstream, timeout: float | None = 30.0) -> httpx.AsyncClient:
    transport = httpx.AsyncHTTPTransport()
    if upstream.uds is not None:
        # httpx has no hook for the network backend, and a by-path connect would follow a
        # symlink planted inside the sandbox; see local/unix.py.
        transport._pool = httpcore.AsyncConnectionPool(
            uds=upstream.uds, network_backend=NoFollowUnixBackend()
        )
    return httpx.AsyncClient(
        transport=transport,
        base_url=upstream.base_url,
        auth=_UpstreamHeaders(upstream),
        timeout=timeout,
        follow_redirects=False,
    )


def websocket_target(
    upstream: Upstream, port: int, target: str
) -> tuple[str, socket.socket | None]:
    """The ws:// URI for `target` on the upstream, and the socket to speak it over, if any.

    A local sandbox's port is a unix socket, connected without following symlinks; a
    remote upstream is reached by its URL.
    """
    if upstream.uds is not None:
        return f"ws://localhost:{port}{target}", connect_unix(upstream.uds)
    return "ws" + upstream.base_url.removeprefix("http").rstrip("/") + target, None


@dataclass(frozen=True)
class Readiness:
    ready: bool
    status_code: int | None
    crashed: bool
    log_tail: str


async def wait_until_ready(sandbox: Sandbox, port: int, process: str, timeout: float) -> Readiness:
    """Poll the dev server until it answers below 500, it exits, or `timeout` passes."""
    upstream = await sandbox.upstream(port)
    deadline = time.monotonic() + timeout
    started = time.monotonic()
    delay = FAST_POLL_S
    async with upstream_client(upstream, timeout=5.0) as client:
        while True:
            try:
                response = await client.get("/")
                if response.status_code < 500:
                    return Readiness(True, response.status_code, False, "")
            except httpx.HTTPError:
                pass
            status = await sandbox.process_status(process)
            if not status.running:
                return Readiness(False, None, True, status.log_tail)
            if time.monotonic() >= deadline:
                return Readiness(False, None, False, status.log_tail)
            await asyncio.sleep(delay)
            if time.monotonic() - started > FAST_POLL_FOR_S:
                delay = min(delay * 2, MAX_POLL_S)
