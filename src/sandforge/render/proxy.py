"""The host side of the render browser's only way out: a filtering HTTP proxy.

Each browser context has a slot; the slot's proxy port inside the browser's network
namespace relays (forwarder.py) to this proxy's unix socket for that slot. A slot
admits one authority, the preview host of the check it is serving (`allow`), and
nothing once the check is over (`revoke`, which also cuts its open connections).

Every request is parsed (h11), not only the first of a connection: its target and its
Host header must both name the allowed authority, so not even a compromised browser
can reach another host through a connection it was let in on. Allowed requests go to
the upstream, the sandforge server, which routes them by Host to the preview. CONNECT
is allowed to the same authority only, and the tunnel is parsed the same way: it
carries WebSockets (Vite's HMR), which switch to raw bytes only after the upstream
answers 101. Everything else gets 403.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
from pathlib import Path
from urllib.parse import urlsplit

import h11

from .jail import socket_name

CHUNK = 65536
DENIED_BODY = (
    b"Blocked by sandforge's rendered check: only the preview being checked is reachable.\n"
)
_DROPPED_HEADERS = {b"proxy-connection", b"proxy-authorization"}


def authority_of(url: str) -> str:
    """`host:port` of an http URL, lowercased, with the default port filled in."""
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise ValueError(f"not an http URL: {url}")
    return f"{parts.hostname.lower()}:{parts.port or 80}"


def _normal(authority: bytes) -> str:
    text = authority.decode("latin-1").lower()
    host, sep, port = text.rpartition(":")
    return text if sep and port.isdigit() and not host.endswith("]") else f"{text}:80"


class _Side:
    """One end of the relay: an h11 connection over an asyncio stream."""

    def __init__(
        self,
        role: type[h11.CLIENT] | type[h11.SERVER],
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        data: bytes = b"",
    ) -> None:
        self.conn = h11.Connection(role)
        if data:  # receive_data(b"") would mean the peer closed
            self.conn.receive_data(data)
        self.reader = reader
        self.writer = writer

    async def next_event(self) -> h11.Event | None:
        """The peer's next event; None when h11 is paused, waiting for our side."""
        while True:
            event = self.conn.next_event()
            if isinstance(event, h11.Event):
                return event
            if event is h11.PAUSED:
                return None
            self.conn.receive_data(await self.reader.read(CHUNK))

    async def send(self, event: h11.Event) -> None:
        data = self.conn.send(event)
        if data:
            self.writer.write(data)
            await self.writer.drain()

    def reusable(self) -> bool:
        return self.conn.our_state is h11.DONE and self.conn.their_state is h11.DONE

    def close(self) -> None:
        self.writer.close()


class FilteringProxy:
    def __init__(self, sockets_dir: Path, slots: int, upstream: tuple[str, int]) -> None:
        self.sockets_dir = sockets_dir
        self.upstream = upstream
        self._allowed: list[str | None] = [None] * slots
        self._streams: list[set[asyncio.StreamWriter]] = [set() for _ in range(slots)]
        self._servers: list[asyncio.Server] = []

    async def start(self) -> None:
        for slot in range(len(self._allowed)):
            path = self.sockets_dir / socket_name(slot)
            server = await asyncio.start_unix_server(
                functools.partial(self._handle, slot), path=str(path), limit=CHUNK
            )
            # Reachable by the render uid, which owns the (0700) directory, and root only.
            os.chmod(path, 0o666)
            self._servers.append(server)

    async def aclose(self) -> None:
        for slot in range(len(self._allowed)):
            self.revoke(slot)
        for server in self._servers:
            server.close()
            await server.wait_closed()
        self._servers = []

    def allow(self, slot: int, authority: str) -> None:
        self._allowed[slot] = authority

    def revoke(self, slot: int) -> None:
        """Admit nothing more, and cut what is open: its readers see the end of the stream."""
        self._allowed[slot] = None
        for writer in list(self._streams[slot]):
            writer.close()

    async def _handle(
        self, slot: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        streams = self._streams[slot]
        streams.add(writer)
        client = _Side(h11.SERVER, reader, writer)
        upstream: _Side | None = None
        try:
            tunnel = False
            while isinstance(request := await client.next_event(), h11.Request):
                path = self._admit(slot, request, tunnel)
                if path is None:
                    await _deny(client)
                    return
                if request.method == b"CONNECT":
                    await client.send(h11.Response(status_code=200, headers=[]))
                    data, _ = client.conn.trailing_data
                    client = _Side(h11.SERVER, reader, writer, data)
                    tunnel = True
                    continue
                if upstream is not None and upstream.reusable():
                    upstream.conn.start_next_cycle()
                else:
                    if upstream is not None:
                        streams.discard(upstream.writer)
                        upstream.close()
                    upstream = await self._connect(slot)
                    if upstream is None:
                        await _deny(client, 502, b"The sandforge server did not answer.\n")
                        return
                switched = await _forward(client, upstream, request, path)
                if switched or not client.reusable():
                    return
                client.conn.start_next_cycle()
        except (h11.ProtocolError, OSError):
            return
        finally:
            streams.discard(writer)
            writer.close()
            if upstream is not None:
                streams.discard(upstream.writer)
                upstream.close()

    async def _connect(self, slot: int) -> _Side | None:
        try:
            reader, writer = await asyncio.open_connection(*self.upstream, limit=CHUNK)
        except OSError:
            return None
        self._streams[slot].add(writer)
        return _Side(h11.CLIENT, reader, writer)

    def _admit(self, slot: int, request: h11.Request, tunnel: bool) -> bytes | None:
        """The origin-form target to send upstream, or None when the request is denied."""
        allowed = self._allowed[slot]
        if allowed is None:
            return None
        if request.method == b"CONNECT":
            return request.target if not tunnel and _normal(request.target) == allowed else None
        host = next((value for name, value in request.headers if name == b"host"), b"")
        if _normal(host) != allowed:
            return None
        if tunnel:
            return request.target if request.target.startswith(b"/") else None
        target = request.target.decode("latin-1")
        try:
            if authority_of(target) != allowed:
                return None
        except ValueError:
            return None
        parts = urlsplit(target)
        origin_form = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        return origin_form.encode("latin-1")


async def _forward(client: _Side, upstream: _Side, request: h11.Request, path: bytes) -> bool:
    """Relay one request and its response; True when they switched protocols (and are done)."""
    headers = [(name, value) for name, value in request.headers if name not in _DROPPED_HEADERS]
    await upstream.send(h11.Request(method=request.method, target=path, headers=headers))
    while not isinstance(event := await client.next_event(), h11.EndOfMessage):
        if not isinstance(event, h11.Data):
            raise OSError("the browser closed the connection mid-request")
        await upstream.send(event)
    await upstream.send(event)
    while not isinstance(event := await upstream.next_event(), h11.EndOfMessage):
        if isinstance(event, h11.InformationalResponse | h11.Response):
            # h11 speaks HTTP/1.1 only, whatever the upstream spoke.
            event = type(event)(
                status_code=event.status_code, headers=event.headers, reason=event.reason
            )
        elif not isinstance(event, h11.Data):
            raise OSError("the upstream closed the connection mid-response")
        await client.send(event)
        if isinstance(event, h11.InformationalResponse) and event.status_code == 101:
            await _splice(client, upstream)
            return True
    await client.send(event)
    return False


async def _deny(client: _Side, status: int = 403, body: bytes = DENIED_BODY) -> None:
    headers = [
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
    ]
    with contextlib.suppress(h11.LocalProtocolError, OSError):
        await client.send(h11.Response(status_code=status, headers=headers))
        await client.send(h11.Data(data=body))
        await client.send(h11.EndOfMessage())


async def _splice(client: _Side, upstream: _Side) -> None:
    """After a 101: raw bytes both ways, starting with what h11 had already read."""
    for source, sink in ((client, upstream), (upstream, client)):
        data, _ = source.conn.trailing_data
        if data:
            sink.writer.write(data)
    await asyncio.gather(
        _pump(client.reader, upstream.writer), _pump(upstream.reader, client.writer)
    )


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(CHUNK):
            writer.write(data)
            await writer.drain()
    except OSError:
        pass
    finally:
        writer.close()
