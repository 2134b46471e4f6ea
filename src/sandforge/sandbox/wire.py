"""One message format for sandforge's own sockets: the toolbox, the control socket, the fork server.

A request names its operation: `{"op": "exec", ...params}`. A reply says whether it worked:
`{"ok": true, ...fields}` or `{"ok": false, "error": {"code": ..., "message": ...}}`, where
`code` is a SandforgeError code, so the host turns it back into the same error class
(`sandbox.base.check_reply`). On a stream socket each message is one line of JSON; on the
fork server's SOCK_SEQPACKET socket each packet is one message, newline or not.

Standard library only, and no asyncio at import: the toolbox daemon loads this file inside
the sandbox (the launcher binds it read-only next to the daemon), where sandforge itself is
not importable and every import slows a sandbox's start. The mapping from codes to
exceptions needs sandforge's error classes, so it stays on the host.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import asyncio
    from pathlib import Path

Message = dict[str, Any]

MAX_MESSAGE_BYTES = 64 << 20
"""A file read or written through the toolbox travels base64-encoded in one message."""
_CHUNK = 1 << 16


class Failure(Exception):
    """An operation that failed, as an error reply carries it: a code and a message."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class MalformedMessage(Failure):
    """Bytes that are not one of our messages: not JSON, not an object, or over the cap."""

    def __init__(self, message: str) -> None:
        super().__init__("bad_message", message)


def request(op: str, **params: Any) -> Message:
    return {"op": op, **params}


def ok(**fields: Any) -> Message:
    return {"ok": True, **fields}


def error(code: str, message: str) -> Message:
    return {"ok": False, "error": {"code": code, "message": message}}


def failure(reply: Message) -> Failure | None:
    """What an error reply reports; None for a reply that says it worked."""
    if reply.get("ok") is True:
        return None
    detail = reply.get("error")
    if not isinstance(detail, dict):
        return MalformedMessage(f"a reply that is neither a success nor an error: {reply!r:.200}")
    return Failure(str(detail.get("code", "internal")), str(detail.get("message", "")))


def encode(message: Message) -> bytes:
    return json.dumps(message, separators=(",", ":")).encode() + b"\n"


def decode(data: bytes, limit: int = MAX_MESSAGE_BYTES) -> Message:
    if len(data) > limit:
        raise MalformedMessage(f"a message of over {limit} bytes")
    try:
        message = json.loads(data)
    except ValueError as exc:
        raise MalformedMessage(f"a message that is not JSON: {exc}") from exc
    if not isinstance(message, dict):
        raise MalformedMessage(f"a message that is not a JSON object: {data[:200]!r}")
    return message


def send(sock: socket.socket, message: Message, fds: Sequence[int] = ()) -> None:
    """Send one message on a blocking stream socket, with `fds` alongside (SCM_RIGHTS)."""
    data = encode(message)
    sent = socket.send_fds(sock, [data], list(fds)) if fds else 0
    if sent < len(data):  # a peer that has all of it may already have answered and gone
        sock.sendall(data[sent:])


def receive(
    sock: socket.socket,
    limit: int = MAX_MESSAGE_BYTES,
    fds: list[int] | None = None,
    max_fds: int = 0,
) -> Message:
    """Read one message from a blocking stream socket; fds that came with it go to `fds`.

    One message per connection: whatever follows its newline is not read.
    """
    buffer = bytearray()
    while b"\n" not in buffer:
        if fds is None:
            data = sock.recv(_CHUNK)
        else:
            data, received, _, _ = socket.recv_fds(sock, _CHUNK, max_fds)
            fds.extend(received)
        if not data:
            break
        buffer += data
        if len(buffer) > limit + 1:
            raise MalformedMessage(f"a message of over {limit} bytes")
    line, newline, _ = buffer.partition(b"\n")
    if not newline:
        raise MalformedMessage("the connection closed before a whole message arrived")
    return decode(bytes(line), limit)


async def serve_private(
    path: Path,
    answer: Callable[[Message], Awaitable[Message]],
    limit: int,
    expected: tuple[type[Exception], ...] = (),
) -> asyncio.AbstractServer:
    """A unix socket server at `path` that only this process's user can reach (mode 0600):
    the sockets the server offers its own workers (sandbox control, rendered check).

    Each connection carries one request and gets `answer`'s reply. A `Failure`, or one of
    the `expected` errors (which carry a `code` and a `message`), becomes an error reply;
    anything else is logged and answered as `internal`, so the asker hears why rather than
    seeing the connection drop.
    """
    import asyncio
    import contextlib
    import logging
    import os

    answered: tuple[type[Exception], ...] = (Failure, *expected)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            try:
                reply = await answer(await read(reader, limit))
            except answered as exc:
                reply = error(getattr(exc, "code", "internal"), getattr(exc, "message", str(exc)))
            except Exception as exc:
                logging.getLogger(__name__).exception("%s failed a request", path.name)
                reply = error("internal", f"{path.name} failed: {exc!r}")
            writer.write(encode(reply))
            await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    def clear() -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            path.unlink()

    await asyncio.to_thread(clear)
    old_umask = os.umask(0o077)
    try:
        return await asyncio.start_unix_server(handle, path=str(path), limit=limit + 1)
    finally:
        os.umask(old_umask)


async def read(reader: asyncio.StreamReader, limit: int = MAX_MESSAGE_BYTES) -> Message:
    """Read one message from an asyncio stream (opened with a `limit` of at least `limit`)."""
    try:
        line = await reader.readline()
    except ValueError as exc:  # the stream's own limit
        raise MalformedMessage(f"a message over the stream's limit: {exc}") from exc
    if not line.endswith(b"\n"):
        raise MalformedMessage("the connection closed before a whole message arrived")
    return decode(line, limit)
