"""The control socket: generation workers ask the server to launch and terminate sandboxes.

bwrap runs with --die-with-parent, so whoever starts a sandbox owns its life. That must be
the server, not a generation's child process, or every preview would die with the run that
made it. Workers therefore ask the server (`RemoteLauncher`) over a unix socket only the
server's user can reach (`ControlServer`), in the message format of sandbox/wire.py; the
server starts bwrap itself (`BwrapLauncher`).
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ...errors import SandforgeError
from .. import wire
from ..base import SandboxError, SandboxSpec, SandboxUnavailable, check_reply
from .bwrap import BwrapLauncher

CONTROL_MESSAGE_BYTES = 1 << 20


class ControlServer:
    """Serves a Launcher on a unix socket only its owner can reach (mode 0600)."""

    def __init__(self, launcher: BwrapLauncher, socket_path: Path, sandboxes_dir: Path) -> None:
        self.launcher = launcher
        self.socket_path = socket_path
        self.sandboxes_dir = sandboxes_dir
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        self._server = await wire.serve_private(
            self.socket_path, self._serve, CONTROL_MESSAGE_BYTES, expected=(SandforgeError,)
        )

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()

    async def _serve(self, request: wire.Message) -> wire.Message:
        sandbox_id = str(request.get("sandbox_id"))
        if "/" in sandbox_id or sandbox_id.startswith("."):
            raise SandboxError(f"bad sandbox id {sandbox_id!r}")
        op = request.get("op")
        if op == "launch":
            try:
                spec = SandboxSpec(**request["spec"])
            except (KeyError, TypeError, ValueError) as exc:
                raise SandboxError(f"bad sandbox spec: {exc}") from exc
            await self.launcher.launch(self.sandboxes_dir / sandbox_id, spec)
            return wire.ok()
        if op == "terminate":
            await self.launcher.terminate(sandbox_id)
            return wire.ok()
        if op == "is_running":
            return wire.ok(running=await self.launcher.is_running(sandbox_id))
        raise SandboxError(f"the sandbox control socket has no operation {op!r}")


class RemoteLauncher:
    """A Launcher that asks the server's ControlServer; used inside generation workers."""

    def __init__(self, socket_path: Path) -> None:
        self.socket_path = socket_path

    async def _call(self, op: str, **params: Any) -> wire.Message:
        try:
            reader, writer = await asyncio.open_unix_connection(
                str(self.socket_path), limit=CONTROL_MESSAGE_BYTES + 1
            )
        except OSError as exc:
            raise SandboxUnavailable(
                f"the sandforge server's sandbox control socket {self.socket_path} is not answering"
            ) from exc
        try:
            writer.write(wire.encode(wire.request(op, **params)))
            await writer.drain()
            reply = await wire.read(reader, CONTROL_MESSAGE_BYTES)
        except wire.Failure as exc:
            raise SandboxError(f"the sandbox control socket sent no proper reply: {exc}") from exc
        finally:
            writer.close()
        return check_reply(reply)

    async def launch(self, sandbox_dir: Path, spec: SandboxSpec) -> None:
        await self._call("launch", sandbox_id=sandbox_dir.name, spec=asdict(spec))

    async def terminate(self, sandbox_id: str) -> None:
        await self._call("terminate", sandbox_id=sandbox_id)

    async def is_running(self, sandbox_id: str) -> bool:
        return bool((await self._call("is_running", sandbox_id=sandbox_id))["running"])
