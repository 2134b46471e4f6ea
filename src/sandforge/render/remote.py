"""A worker's side of the server's rendered check (render/service.py): no browser here."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from ..config import Settings
from ..sandbox import wire

MESSAGE_BYTES = 1 << 20
"""A report, or a request, is small: the screenshot travels as a file, not in the message."""
ANSWER_MARGIN_S = 30.0
"""How much longer than the check's own timeout a worker waits (a check may queue)."""


def socket_path(settings: Settings) -> Path:
    return settings.data_dir / "render.sock"


class RemoteRenderCheck:
    """A worker's rendered check: the server's renderer, asked over its socket."""

    def __init__(self, path: Path, timeout_s: float) -> None:
        self.path = path
        self.timeout_s = timeout_s

    async def __call__(self, url: str, screenshot: Path) -> dict[str, Any] | None:
        message = wire.request("check", url=url, screenshot=str(screenshot), timeout_s=None)
        try:
            reader, writer = await asyncio.open_unix_connection(
                str(self.path), limit=MESSAGE_BYTES + 1
            )
        except OSError as exc:
            return _unavailable(f"the server's render service does not answer ({exc})")
        try:
            writer.write(wire.encode(message))
            await writer.drain()
            reply = await asyncio.wait_for(
                wire.read(reader, MESSAGE_BYTES), self.timeout_s + ANSWER_MARGIN_S
            )
        except (OSError, TimeoutError, wire.Failure) as exc:
            return _unavailable(f"the rendered check did not answer: {exc}")
        finally:
            writer.close()
        failed = wire.failure(reply)
        if failed is not None:
            return _unavailable(failed.message)
        report: dict[str, Any] = reply["report"]
        return report


def _unavailable(why: str) -> dict[str, Any]:
    """A check that could not run says so, and finds no problem in the app."""
    return {"ok": True, "problems": [], "unavailable": why}
