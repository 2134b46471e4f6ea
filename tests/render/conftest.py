"""A stand-in for the sandforge server (routing by Host, like the real one) and listeners
that must never hear from the render browser."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
import uvicorn

from sandforge.render import Renderer, find_chromium
from sandforge.render.jail import problem
from tests.conftest import free_socket

Page = tuple[int, str, str]
"""status, content type, body"""


@pytest.fixture(autouse=True)
def _contained_browser_available() -> None:
    reason = problem() or ("chromium is not installed" if find_chromium() is None else None)
    if reason is not None:
        pytest.skip(reason)


@dataclass
class Preview:
    """An HTTP (and WebSocket) server that serves `pages` to whichever Host asks, and
    records every request as (host, path): the sandforge server, as far as the render
    browser can tell."""

    port: int = 0
    pages: dict[str, Page] = field(default_factory=dict)
    seen: list[tuple[str, str]] = field(default_factory=list)
    delays: dict[str, float] = field(default_factory=dict)

    def host(self, project: str = "pj0001") -> str:
        return f"3000-{project}.localhost:{self.port}"

    def url(self, path: str = "/", project: str = "pj0001") -> str:
        return f"http://{self.host(project)}{path}"

    def add(self, path: str, body: str, status: int = 200, kind: str = "text/html") -> None:
        self.pages[path] = (status, kind, body)

    def hosts(self) -> set[str]:
        return {host for host, _ in self.seen}

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        headers = dict(scope["headers"])
        self.seen.append((headers.get(b"host", b"").decode(), scope["path"]))
        if scope["type"] == "websocket":
            await receive()
            await send({"type": "websocket.accept"})
            await send({"type": "websocket.send", "text": "hello over the socket"})
            return
        if scope["path"] in self.delays:
            await receive()  # the request itself; the next message is the client leaving
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(receive(), self.delays[scope["path"]])
                return
        status, kind, body = self.pages.get(scope["path"], (404, "text/plain", "not found"))
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", kind.encode())],
            }
        )
        await send({"type": "http.response.body", "body": body.encode()})


@pytest.fixture
async def preview() -> AsyncIterator[Preview]:
    app = Preview()
    sock = free_socket()
    app.port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", lifespan="off", ws="websockets-sansio")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        assert not task.done(), "the preview server did not start"
        await asyncio.sleep(0.01)
    yield app
    server.should_exit = True
    await task


@pytest.fixture
async def make_renderer(preview: Preview) -> AsyncIterator[Callable[..., Awaitable[Renderer]]]:
    renderers: list[Renderer] = []

    async def make(**options: Any) -> Renderer:
        renderer = Renderer(upstream=("127.0.0.1", preview.port), **options)
        renderers.append(renderer)
        await renderer.start()
        return renderer

    yield make
    for renderer in renderers:
        await renderer.aclose()


@dataclass
class Listener:
    """A TCP listener on the host's loopback that records whoever connects."""

    port: int = 0
    connections: int = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        writer.write(
            b"HTTP/1.1 200 OK\r\naccess-control-allow-origin: *\r\ncontent-length: 6\r\n"
            b"connection: close\r\n\r\nsecret"
        )
        await writer.drain()
        writer.close()


@pytest.fixture
async def make_listener() -> AsyncIterator[Callable[[], Awaitable[Listener]]]:
    servers: list[asyncio.Server] = []

    async def make() -> Listener:
        listener = Listener()
        server = await asyncio.start_server(listener.handle, "127.0.0.1", 0)
        listener.port = server.sockets[0].getsockname()[1]
        servers.append(server)
        return listener

    yield make
    for server in servers:
        server.close()
        await server.wait_closed()


class Datagrams(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.received: list[bytes] = []

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.received.append(data)
