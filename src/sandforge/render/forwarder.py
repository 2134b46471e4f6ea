"""Inside the render browser's network namespace: TCP ports on its loopback → unix sockets.

Stdlib only; run as `python3 -I -S forwarder.py PORT=SOCKET ...` by the launcher inside
the sandbox. The namespace has no route out, so these ports are the browser's only
way to reach anything: each relays, byte for byte, to one unix socket of the host's
filtering proxy (one per browser-context slot), which decides what gets through.

It binds every port before it detaches, so the browser started right after it never
finds a port closed. It closes every inherited fd first: Playwright's pipes to the
browser must end when the browser does, not live on in this process.
"""

from __future__ import annotations

import asyncio
import functools
import os
import socket
import sys

CHUNK = 65536


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(CHUNK):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except OSError:
        writer.close()


async def _relay(path: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        up_reader, up_writer = await asyncio.open_unix_connection(path)
    except OSError:
        writer.close()
        return
    try:
        await asyncio.gather(_pump(reader, up_writer), _pump(up_reader, writer))
    finally:
        writer.close()
        up_writer.close()


async def _serve(listeners: list[tuple[socket.socket, str]]) -> None:
    for sock, path in listeners:
        await asyncio.start_server(functools.partial(_relay, path), sock=sock, limit=CHUNK)
    await asyncio.Event().wait()


def main(argv: list[str]) -> None:
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    os.closerange(3, os.sysconf("SC_OPEN_MAX"))
    listeners = []
    for spec in argv:
        port, path = spec.split("=", 1)
        sock = socket.create_server(("127.0.0.1", int(port)), backlog=128)
        sock.setblocking(False)
        listeners.append((sock, path))
    if os.fork() == 0:
        asyncio.run(_serve(listeners))
    os._exit(0)


if __name__ == "__main__":
    main(sys.argv[1:])
