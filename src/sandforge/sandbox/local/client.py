"""The host side of the toolbox protocol: one request and one reply per connection (wire.py)."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

from .. import wire
from ..base import SandboxError, SandboxStopped, check_reply
from .unix import connect_unix

REPLY_TIMEOUT_S = 30.0


class ToolboxClient:
    def __init__(self, socket_path: str, sandbox_id: str) -> None:
        self.socket_path = socket_path
        self.sandbox_id = sandbox_id

    def _connect(self) -> socket.socket:
        try:
            return connect_unix(self.socket_path)
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            raise SandboxStopped(
                f"sandbox {self.sandbox_id} is not running; start it with "
                f"`sandforge sandboxes start {self.sandbox_id}` or "
                f"POST /api/sandboxes/{self.sandbox_id}/start"
            ) from exc

    async def call(
        self, op: str, reply_timeout: float = REPLY_TIMEOUT_S, **params: Any
    ) -> wire.Message:
        sock = self._connect()
        reader, writer = await asyncio.open_unix_connection(
            sock=sock, limit=wire.MAX_MESSAGE_BYTES + 1
        )
        try:
            writer.write(wire.encode(wire.request(op, **params)))
            await writer.drain()
            reply = await asyncio.wait_for(wire.read(reader), reply_timeout)
        except TimeoutError as exc:
            raise SandboxError(
                f"sandbox {self.sandbox_id} did not answer {op} in {reply_timeout:.0f}s"
            ) from exc
        except wire.Failure as exc:
            raise self._broken(op, exc) from exc
        finally:
            writer.close()
        return check_reply(reply)

    async def call_with_fd(self, op: str, fd: int, **params: Any) -> wire.Message:
        """Like `call`, handing the daemon `fd` with the request (SCM_RIGHTS)."""

        def run() -> wire.Message:
            with self._connect() as sock:
                sock.setblocking(True)
                sock.settimeout(REPLY_TIMEOUT_S)
                wire.send(sock, wire.request(op, **params), [fd])
                return wire.receive(sock)

        try:
            reply = await asyncio.to_thread(run)
        except TimeoutError as exc:
            raise SandboxError(f"sandbox {self.sandbox_id} did not answer {op}") from exc
        except wire.Failure as exc:
            raise self._broken(op, exc) from exc
        return check_reply(reply)

    def _broken(self, op: str, exc: wire.Failure) -> SandboxError:
        return SandboxError(f"sandbox {self.sandbox_id} sent no proper reply to {op}: {exc}")
