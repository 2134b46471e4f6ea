"""Previews of another replica's local sandbox: forwarded, unchanged, to that replica.

A local sandbox lives on the machine of the replica that made it, so only that replica
can serve its preview. Any other replica passes the request on as it came (Host,
cookies and token included, so the owner decides access as it would for a direct
request) to the owner's advertised address, and relays the answer: HTTP streamed both
ways, WebSockets message by message. Daytona sandboxes and stored projects need none of
this; every replica reaches them. A forwarded request carries a hop header, and a
replica never forwards a request that has one, so a stale view of who owns what can
cost a 404, never a loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from urllib.parse import urlsplit

import httpx
from starlette.requests import HTTPConnection, Request
from starlette.responses import HTMLResponse, Response
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import InvalidStatus, WebSocketException
from websockets.typing import Origin, Subprotocol

from ...errors import NotFound
from ...ids import kind_of
from ...runs.replica import Replica
from ...store.replicas import ReplicaRecord
from ...store.repo import Store
from .http import HOP_BY_HOP, page, raw_target, relay_response
from .route import PreviewHost
from .ws import refuse, relay_websocket

HOP_HEADER = "x-sandforge-replica-hop"
"""Set on a request one replica forwards to another; such a request is never forwarded."""


def _headers(connection: HTTPConnection, hop: str) -> list[tuple[str, str]]:
    kept = [
        (k, v)
        for k, v in connection.headers.items()
        if k not in HOP_BY_HOP and not k.startswith("sec-websocket-") and k != HOP_HEADER
    ]
    return [*kept, (HOP_HEADER, hop)]


class ReplicaForwarder:
    def __init__(self, replica: Replica, store: Store) -> None:
        self.replica = replica
        self.store = store
        self._clients: dict[str, httpx.AsyncClient] = {}

    async def aclose(self) -> None:
        for client in self._clients.values():
            await client.aclose()
        self._clients.clear()

    async def owner(self, connection: HTTPConnection, host: PreviewHost) -> ReplicaRecord | None:
        """The other replica holding the sandbox this host names, if another does."""
        if HOP_HEADER in connection.headers:
            return None
        if kind_of(host.target_id) != "project":
            owner = await self.replica.find_owner(host.target_id)
            if owner is None:
                with contextlib.suppress(NotFound):
                    made_for = await self.store.project_by_sandbox(host.target_id)
                    owner = await self.replica.find_holder(made_for.id, host.target_id)
            return owner if owner is not None and owner.id != self.replica.id else None
        try:
            project = await self.store.get_project(host.target_id)
        except NotFound:
            return None
        if project.sandbox_id is None or project.provider != "local":
            return None
        owner = await self.replica.find_holder(project.id, project.sandbox_id)
        return owner if owner is not None and owner.id != self.replica.id else None

    def _client(self, owner: ReplicaRecord) -> httpx.AsyncClient:
        client = self._clients.get(owner.address)
        if client is None:
            client = httpx.AsyncClient(base_url=owner.address, timeout=None, follow_redirects=False)
            self._clients[owner.address] = client
        return client

    async def http(
        self, scope: Scope, receive: Receive, send: Send, owner: ReplicaRecord, host: str
    ) -> None:
        """Forward one request, with the Host the proxy routed by (the client's last)."""
        request = Request(scope, receive)
        client = self._client(owner)
        headers = [*_headers(request, self.replica.id), ("host", host)]
        has_body = request.method not in ("GET", "HEAD", "OPTIONS")
        try:
            response = await client.send(
                client.build_request(
                    request.method,
                    raw_target(scope),
                    headers=headers,
                    content=request.stream() if has_body else None,
                ),
                stream=True,
            )
        except (httpx.HTTPError, OSError):
            await _unreachable(owner)(scope, receive, send)
            return
        await relay_response(response, scope, receive, send)

    async def websocket(self, websocket: WebSocket, owner: ReplicaRecord, host: str) -> None:
        try:
            connection = await self._connect(websocket, owner, host)
        except InvalidStatus as exc:
            # The owner refused the handshake (private, not found, stopped): its answer.
            answer = exc.response
            kept = {"content-type": answer.headers.get("content-type", "text/plain")}
            await refuse(websocket, Response(bytes(answer.body), answer.status_code, kept))
            return
        except (OSError, WebSocketException, TimeoutError):
            await refuse(websocket, _unreachable(owner))
            return
        await relay_websocket(websocket, connection)

    async def _connect(
        self, websocket: WebSocket, owner: ReplicaRecord, host: str
    ) -> ClientConnection:
        address = urlsplit(owner.address)
        sock = await asyncio.to_thread(
            socket.create_connection, (address.hostname, address.port or 80), 10
        )
        headers = websocket.headers
        skipped = {"origin", "user-agent", "host"}
        forwarded = [(k, v) for k, v in _headers(websocket, self.replica.id) if k not in skipped]
        subprotocols = [Subprotocol(p) for p in websocket.scope.get("subprotocols", [])]
        # The URI's host is the preview's, so the owner routes it as the client asked.
        return await ws_connect(
            f"ws://{host}{raw_target(websocket.scope)}",
            sock=sock,
            subprotocols=subprotocols or None,
            additional_headers=forwarded,
            origin=Origin(headers["origin"]) if "origin" in headers else None,
            user_agent_header=headers.get("user-agent"),
            compression=None,
            max_size=None,
            proxy=None,
            ping_interval=None,
        )


def _unreachable(owner: ReplicaRecord) -> HTMLResponse:
    return page(
        502,
        "The replica serving this preview is not answering",
        f"Its sandbox lives on replica {owner.id} ({owner.address}). Reload in a moment.",
    )
