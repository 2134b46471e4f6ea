"""The host side of the toolbox protocol: one JSON request line, one JSON reply line."""

from __future__ import annotations

import asyncio
import json
import socket
from typing import Any

from ..base import (
    NotARegularFile,
    PathEscapeError,
    SandboxDiskFull,
    SandboxError,
    SandboxFileNotFound,
    SandboxFileTooLarge,
    SandboxStopped,
)
from .unix import connect_unix

MAX_REPLY_BYTES = 64 << 20

_ERRORS: dict[str, type[SandboxError]] = {
    "path_escape": PathEscapeError,
    "file_not_found": SandboxFileNotFound,
    "file_too_large": SandboxFileTooLarge,
    "disk_full": SandboxDiskFull,
    "not_a_file": NotARegularFile,
}


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

    async def call(self, op: str, reply_timeout: float = 30.0, **params: Any) -> dict[str, Any]:
        sock = self._connect()
        reader, writer = await asyncio.open_unix_connection(sock=sock, limit=MAX_REPLY_BYTES)
        try:
            writer.write(json.dumps({"op": op, **params}).encode() + b"\n")
            await writer.drain()
            line = await asyncio.wait_for(reader.readline(), reply_timeout)
        except TimeoutError as exc:
            raise SandboxError(
                f"sandbox {self.sandbox_id} did not answer {op} in {reply_timeout:.0f}s"
            ) from exc
        finally:
            writer.close()
        return self._check(op, line)

    async def call_with_fd(self, op: str, fd: int, **params: Any) -> dict[str, Any]:
        """Like `call`, handing the daemon `fd` with the request (SCM_RIGHTS)."""

        def run() -> bytes:
            with self._connect() as sock:
                sock.setblocking(True)
                sock.settimeout(30.0)
                socket.send_fds(sock, [json.dumps({"op": op, **params}).encode() + b"\n"], [fd])
                line = b""
                while not line.endswith(b"\n"):
                    chunk = sock.recv(65536)
                    if not chunk:
                        break
                    line += chunk
                return line

        try:
            line = await asyncio.to_thread(run)
        except TimeoutError as exc:
            raise SandboxError(f"sandbox {self.sandbox_id} did not answer {op}") from exc
        return self._check(op, line)

    def _check(self, op: str, line: bytes) -> dict[str, Any]:
        if not line:
            raise SandboxError(f"sandbox {self.sandbox_id} closed the connection during {op}")
        reply = json.loads(line)
        if not isinstance(reply, dict):
            raise SandboxError(f"sandbox {self.sandbox_id} sent a malformed reply to {op}")
        if not reply.get("ok"):
            error_type = _ERRORS.get(str(reply.get("code")), SandboxError)
            raise error_type(str(reply.get("error", "toolbox error")))
        return reply
