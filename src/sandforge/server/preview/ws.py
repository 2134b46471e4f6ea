"""WebSockets to a preview (Vite's HMR and the like): both directions, subprotocols kept."""

from __future__ import annotations

import asyncio
import contextlib

from starlette.responses import Response
from starlette.websockets import WebSocket, WebSocketDisconnect
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed, WebSocketException
from websockets.typing import Origin, Subprotocol

from ...sandbox import Sandbox, SandboxError
from ...sandbox.http import websocket_target
from .auth import TOKEN_HEADER
from .http import HOP_BY_HOP, raw_target

OPEN_TIMEOUT_S = 30.0
"""A live preview opens Vite's HMR socket while Vite is cold (optimizing its dependencies),
when its handshake is slowest: on a loaded machine it took over websockets' default 10 s."""


async def refuse(websocket: WebSocket, response: Response) -> None:
    """Answer a handshake with an HTTP status where the server can, else close with 4xxx
    (the status mirrored: 4401, 4404, 4502, 4503)."""
    if "websocket.http.response" in websocket.scope.get("extensions", {}):
        await websocket.send_denial_response(response)
    else:
        await websocket.close(code=4000 + response.status_code % 1000)


async def _connect(websocket: WebSocket, sandbox: Sandbox, port: int) -> ClientConnection:
    headers = websocket.headers
    upstream = await sandbox.upstream(port)
    skipped = {TOKEN_HEADER, "cookie", "origin", "user-agent"}
    skipped |= {name.lower() for name in upstream.headers}
    forwarded = {
        k: v
        for k, v in headers.items()
        if k not in HOP_BY_HOP and not k.startswith("sec-websocket-") and k not in skipped
    }
    uri, sock = websocket_target(upstream, port, raw_target(websocket.scope))
    subprotocols = [Subprotocol(p) for p in websocket.scope.get("subprotocols", [])]
    return await ws_connect(
        uri,
        sock=sock,
        subprotocols=subprotocols or None,
        additional_headers={**forwarded, **upstream.headers},
        origin=Origin(headers["origin"]) if "origin" in headers else None,
        user_agent_header=headers.get("user-agent"),
        compression=None,
        max_size=None,
        proxy=None,
        ping_interval=None,
        open_timeout=OPEN_TIMEOUT_S,
    )


async def forward_websocket(
    websocket: WebSocket, sandbox: Sandbox, port: int, unreachable: Response
) -> None:
    try:
        connection = await _connect(websocket, sandbox, port)
    except (OSError, SandboxError, WebSocketException, TimeoutError):
        await refuse(websocket, unreachable)
        return
    await relay_websocket(websocket, connection)


async def relay_websocket(websocket: WebSocket, connection: ClientConnection) -> None:
    """Accept `websocket` and pump messages both ways until either side closes."""
    async with connection:
        await websocket.accept(subprotocol=connection.subprotocol)

        async def client_to_sandbox() -> None:
            with contextlib.suppress(WebSocketDisconnect, ConnectionClosed):
                while True:
                    message = await websocket.receive()
                    if message["type"] != "websocket.receive":
                        return
                    text = message.get("text")
                    await connection.send(text if text is not None else message.get("bytes") or b"")

        async def sandbox_to_client() -> None:
            with contextlib.suppress(ConnectionClosed):
                async for data in connection:
                    if isinstance(data, str):
                        await websocket.send_text(data)
                    else:
                        await websocket.send_bytes(data)
            with contextlib.suppress(RuntimeError):
                await websocket.close(code=connection.close_code or 1000)

        pumps = [
            asyncio.ensure_future(client_to_sandbox()),
            asyncio.ensure_future(sandbox_to_client()),
        ]
        await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        for pump in pumps:
            pump.cancel()
        await asyncio.gather(*pumps, return_exceptions=True)
