"""The host side of the toolbox protocol: one JSON request line, one JSON reply line."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from ..base import (
    PathEscapeError,
    SandboxError,
    SandboxFileNotFound,
)
from .unix import connect_unix

MAX_REPLY_BYTES = 64 << 20

_ERRORS: dict[str, type[SandboxError]] = {
    "path_escape": PathEscapeError,
    "file_not_found": SandboxFileNotFound,
}


class SandboxStoppedError(SandboxError):
    code = "sandbox_stopped"


class ToolboxClient:
    def __init__(self, socket_path: str, sandbox_id: str) -> None:
        self.socket_path = socket_path
        self.sandbox_id = sandbox_id

    async def call(self, op: str, reply_timeout: float = 30.0, **params: Any) -> dict[str, Any]:
        try:
            sock = connect_unix(self.socket_path)
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            raise SandboxStoppedError(
                f"sandbox {self.sandbox_id} is not running; start it with "
                f"`sandforge sandboxes start {self.sandbox_id}` or POST /api/sandboxes/{self.sandbox_id}/start"
            ) from exc
        reader, writer = await asyncio.open_unix_connection(sock=sock, limit=MAX_REPLY_BYTES)
        try:
            writer.write(json.dumps({"op": op, **params}).encode() + b"\n")
            await writer.drain()
            line = await asyncio.wait_for(reader.readline(), reply_timeout)
        except TimeoutError as exc:
            raise SandboxError(f"sandbox {self.sandbox_id} did not answer {op} in {reply_timeout:.0f}s") from exc
        finally:
            writer.close()
        if not line:
            raise SandboxError(f"sandbox {self.sandbox_id} closed the connection during {op}")
        reply = json.loads(line)
        if not isinstance(reply, dict):
            raise SandboxError(f"sandbox {self.sandbox_id} sent a malformed reply to {op}")
        if not reply.get("ok"):
            error_type = _ERRORS.get(str(reply.get("code")), SandboxError)
            raise error_type(str(reply.get("error", "toolbox error")))
        return reply
