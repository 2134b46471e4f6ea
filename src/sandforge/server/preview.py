"""The host-based preview proxy: `{port}-{sandboxId}.{preview_domain}` → the sandbox's port.

It sits in front of the app as ASGI middleware. Requests stream both ways
without buffering; hop-by-hop headers are stripped. Previews are private: a
`?token=` sets a host-only cookie and redirects to the clean URL; the header
`x-sandforge-preview-token` works too; public sandboxes need neither.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import mimetypes
import re
import secrets
from collections.abc import AsyncIterator, Awaitable
from http.cookies import SimpleCookie
from typing import Protocol
from urllib.parse import parse_qsl, unquote, urlencode

import httpx
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed, WebSocketException
from websockets.typing import Origin, Subprotocol

from ..sandbox import Sandbox, SandboxError, SandboxNotFound, SandboxState, Upstream
from ..sandbox.http import upstream_client
from ..sandbox.local.unix import connect_unix
from ..store.errors import FileNotStored, ProjectNotFound
from ..store.records import ProjectRecord
from .services import Services

TOKEN_COOKIE = "sandforge_preview_token"
TOKEN_HEADER = "x-sandforge-preview-token"
TOKEN_QUERY = "token"
PROJECT_PREFIX = "pj"
UPSTREAM_TOKEN_HEADER = "x-daytona-preview-token"
"""Added server-side for Daytona upstreams; a client's own is never forwarded."""
HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
}
_HOST = re.compile(r"^(?P<port>\d{1,5})-(?P<sandbox>[a-z0-9][a-z0-9-]*)\.(?P<domain>[^:]+)(:\d+)?$")


def parse_preview_host(host: str, domain: str) -> tuple[int, str] | None:
    match = _HOST.match(host.lower())
    if match is None or match["domain"] != domain.lower():
        return None
    port = int(match["port"])
    if not 1 <= port <= 65535:
        return None
    return port, match["sandbox"]


class Responder(Protocol):
    def __call__(
        self, status: int, body: bytes, extra: list[tuple[bytes, bytes]] | None = None
    ) -> Awaitable[None]: ...


def _target(scope: Scope) -> str:
    """The request target as the client sent it: raw path (still percent-encoded) and query."""
    query: str = scope.get("query_string", b"").decode("latin-1")
    path: str = scope.get("raw_path", scope["path"].encode()).decode("latin-1").split("?")[0]
    return path + (f"?{query}" if query else "")


def _same(given: str, token: str) -> bool:
    return secrets.compare_digest(given.encode(), token.encode())


def _token_cookie(token: str, host: str, scheme: str) -> bytes:
    """Host-only (no Domain), so it never reaches another sandbox's preview.

    The preview usually sits in an iframe of another site (the sandforge page), where
    browsers keep only a partitioned `SameSite=None; Secure` cookie. That needs a secure
    origin: https, or http on *.localhost, which browsers treat as secure. Elsewhere the
    cookie stays `Lax`, good for opening the preview in its own tab.
    """
    hostname = host.rsplit(":", 1)[0]
    if scheme == "https" or hostname == "localhost" or hostname.endswith(".localhost"):
        same_site = "SameSite=None; Secure; Partitioned"
    else:
        same_site = "SameSite=Lax"
    return f"{TOKEN_COOKIE}={token}; Path=/; HttpOnly; {same_site}".encode()


def _page(status: int, title: str, detail: str) -> tuple[int, bytes]:
    body = (
        "<!doctype html><html lang=en><meta charset=utf-8>"
        f"<title>{html.escape(title)}</title>"
        "<body style='font:16px system-ui;max-width:40rem;margin:4rem auto;padding:0 1rem'>"
        f"<h1>{html.escape(title)}</h1><p>{html.escape(detail)}</p>"
        "<p style='opacity:.6'>sandforge preview</p></body></html>"
    )
    return status, body.encode()


class PreviewProxy:
    def __init__(self, app: ASGIApp, services: Services) -> None:
        self.app = app
        self.services = services
        self._clients: dict[tuple[str, int], tuple[Upstream, httpx.AsyncClient]] = {}
        """Per sandbox port: where it is reached and a pooled client (keep-alive)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, receive, send)
            if self._clients:
                for _, client in self._clients.values():
                    await client.aclose()
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers", [])}
        target = parse_preview_host(headers.get("host", ""), self.services.settings.preview_domain)
        if target is None:
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket" and (await receive())["type"] != "websocket.connect":
            return
        await self._proxy(scope, receive, send, headers, *target)

    async def _respond(
        self, send: Send, status: int, body: bytes, extra: list[tuple[bytes, bytes]] | None = None
    ) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"text/html; charset=utf-8"),
                    (b"cache-control", b"no-store"),
                    *(extra or []),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def _proxy(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        headers: dict[str, str],
        port: int,
        target_id: str,
    ) -> None:
        """Resolve the sandbox or project, check the token, then serve or forward.

        WebSocket requests get the same checks; their failures close the socket with a
        code in the 4xxx range mirroring the HTTP status (4401, 4404, 4502, 4503).
        """
        is_websocket = scope["type"] == "websocket"

        async def respond(
            status: int, body: bytes, extra: list[tuple[bytes, bytes]] | None = None
        ) -> None:
            if is_websocket:
                await self._refuse_websocket(scope, send, status, body)
            else:
                await self._respond(send, status, body, extra)

        routes = self.services.preview_routes
        project: ProjectRecord | None = None
        sandbox: Sandbox | None = None
        try:
            route = routes.get(target_id)
            if route is not None:
                project, sandbox = route
            elif target_id.startswith(PROJECT_PREFIX):
                project = await self.services.store.get_project(target_id)
            else:
                sandbox = await self.services.find_sandbox(target_id)
            if project is not None:
                token, public = project.preview_token, project.public
            else:
                assert sandbox is not None
                info = await sandbox.info()
                token, public = info.preview_token, info.public
        except (SandboxNotFound, ProjectNotFound):
            await respond(
                *_page(
                    404,
                    "Preview not found",
                    f"There is no sandbox or project {target_id}. It may have been deleted.",
                ),
            )
            return
        except SandboxError as exc:
            await respond(*_page(502, "The preview is unavailable", str(exc)))
            return
        if not public and not await self._authorized(scope, respond, headers, token):
            return
        if project is not None and project.flow == "persistent":
            if is_websocket:
                await respond(404, b"stored files have no websocket")
                return
            await self._serve_stored(scope, send, project)
            return
        try:
            if project is not None:
                # The fast path: the sandbox that served last time, if it still runs.
                if sandbox is None or (await sandbox.info()).state != SandboxState.STARTED:
                    sandbox = await self.services.serving_sandbox(project)
                    # Pooled connections to a sandbox that was stopped are dead.
                    await self._drop_clients(sandbox.id)
            elif sandbox is not None and (await sandbox.info()).state != SandboxState.STARTED:
                routes.pop(target_id, None)
                await respond(
                    *_page(
                        503,
                        "This preview is stopped",
                        f"Sandbox {target_id} is stopped. Start it from the sandboxes page "
                        f"(or POST /api/sandboxes/{target_id}/start) and reload.",
                    ),
                )
                return
        except SandboxError as exc:
            await respond(*_page(502, "The preview could not be started", str(exc)))
            return
        assert sandbox is not None
        routes[target_id] = (project, sandbox)
        self.services.touch(sandbox.id)
        if is_websocket:
            await self._forward_websocket(scope, receive, send, headers, sandbox, port)
        elif not await self._forward(scope, receive, send, headers, sandbox, port):
            routes.pop(target_id, None)

    async def _authorized(
        self, scope: Scope, respond: Responder, headers: dict[str, str], token: str
    ) -> bool:
        """True if the request carries the token; else it answers: 401, or the cookie redirect.

        A `?token=` that is not ours is the app's own (Vite's HMR socket uses one) and is
        passed through untouched.
        """
        query = parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
        given_query = next((v for k, v in query if k == TOKEN_QUERY), None)
        query_matches = given_query is not None and _same(given_query, token)
        cookie = SimpleCookie(headers.get("cookie", ""))
        carried = [
            headers.get(TOKEN_HEADER),
            cookie[TOKEN_COOKIE].value if TOKEN_COOKIE in cookie else None,
        ]
        if not query_matches and not any(c is not None and _same(c, token) for c in carried):
            await respond(
                *_page(
                    401,
                    "This preview is private",
                    "Open the share link that includes its token (?token=...), "
                    f"or send the {TOKEN_HEADER} header.",
                ),
            )
            return False
        if not query_matches or scope["type"] == "websocket":
            return True
        clean = urlencode([(k, v) for k, v in query if k != TOKEN_QUERY])
        location = scope["path"] + (f"?{clean}" if clean else "")
        await respond(
            302,
            b"",
            [
                (b"location", location.encode()),
                (b"set-cookie", _token_cookie(token, headers.get("host", ""), scope["scheme"])),
            ],
        )
        return False

    async def _serve_stored(self, scope: Scope, send: Send, project: ProjectRecord) -> None:
        """The persistent flow: files straight from the store."""
        path = unquote(scope["path"]).lstrip("/")
        if path == "" or path.endswith("/"):
            path += "index.html"
        try:
            content = await self.services.store.read_file(project.id, path)
        except FileNotStored:
            await self._respond(
                send, *_page(404, "Not found", f"Project {project.id} has no file {path}.")
            )
            return
        media_type = mimetypes.guess_type(path)[0] or "application/octet-stream"
        if media_type.startswith("text/") or media_type in ("application/javascript",):
            media_type += "; charset=utf-8"
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", media_type.encode()),
                    (b"cache-control", b"no-cache"),
                    (b"content-length", str(len(content)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": content})

    async def _refuse_websocket(self, scope: Scope, send: Send, status: int, body: bytes) -> None:
        """Answer a WebSocket handshake with an HTTP status where the server can, else close."""
        if "websocket.http.response" in scope.get("extensions", {}):
            await send(
                {
                    "type": "websocket.http.response.start",
                    "status": status,
                    "headers": [(b"content-type", b"text/html; charset=utf-8")],
                }
            )
            await send({"type": "websocket.http.response.body", "body": body})
        else:
            await send({"type": "websocket.close", "code": 4000 + status % 1000})

    async def _forward_websocket(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        headers: dict[str, str],
        sandbox: Sandbox,
        port: int,
    ) -> None:
        """Both directions of a WebSocket, subprotocol (e.g. Vite's `vite-hmr`) included."""
        target = _target(scope)
        forwarded = {
            k: v
            for k, v in headers.items()
            if k not in HOP_BY_HOP
            and not k.startswith("sec-websocket-")
            and k not in (TOKEN_HEADER, "cookie", "origin", "user-agent")
        }
        try:
            upstream = await sandbox.upstream(port)
            sock = None
            if upstream.uds is not None:
                sock = connect_unix(upstream.uds)
                uri = f"ws://localhost:{port}{target}"
            else:
                uri = "ws" + upstream.base_url.removeprefix("http").rstrip("/") + target
            connection = await ws_connect(
                uri,
                sock=sock,
                subprotocols=[Subprotocol(p) for p in scope.get("subprotocols", [])] or None,
                additional_headers={**forwarded, **upstream.headers},
                origin=Origin(headers["origin"]) if "origin" in headers else None,
                user_agent_header=headers.get("user-agent"),
                compression=None,
                max_size=None,
                proxy=None,
                ping_interval=None,
            )
        except (OSError, SandboxError, WebSocketException, TimeoutError):
            await self._refuse_websocket(scope, send, 502, b"the dev server refused the websocket")
            return
        async with connection:
            await send({"type": "websocket.accept", "subprotocol": connection.subprotocol})

            async def client_to_sandbox() -> None:
                while True:
                    message = await receive()
                    if message["type"] != "websocket.receive":
                        return
                    text = message.get("text")
                    await connection.send(text if text is not None else message.get("bytes") or b"")

            async def sandbox_to_client() -> None:
                with contextlib.suppress(ConnectionClosed):
                    async for data in connection:
                        key = "text" if isinstance(data, str) else "bytes"
                        await send({"type": "websocket.send", key: data})
                await send({"type": "websocket.close", "code": connection.close_code or 1000})

            pumps = [
                asyncio.ensure_future(client_to_sandbox()),
                asyncio.ensure_future(sandbox_to_client()),
            ]
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
            for pump in pumps:
                pump.cancel()
            await asyncio.gather(*pumps, return_exceptions=True)

    async def _drop_clients(self, sandbox_id: str) -> None:
        for key in [k for k in self._clients if k[0] == sandbox_id]:
            _, client = self._clients.pop(key)
            await client.aclose()

    async def _client(self, sandbox: Sandbox, port: int) -> tuple[Upstream, httpx.AsyncClient]:
        key = (sandbox.id, port)
        cached = self._clients.get(key)
        if cached is None:
            upstream = await sandbox.upstream(port)
            cached = upstream, upstream_client(upstream, timeout=None)
            self._clients[key] = cached
        return cached

    async def _forward(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        headers: dict[str, str],
        sandbox: Sandbox,
        port: int,
    ) -> bool:
        """Forward one request; False if the dev server could not be reached."""
        forwarded = [
            (k, v)
            for k, v in headers.items()
            if k not in HOP_BY_HOP and k not in (TOKEN_HEADER, UPSTREAM_TOKEN_HEADER, "cookie")
        ]
        cookie = SimpleCookie(headers.get("cookie", ""))
        cookie.pop(TOKEN_COOKIE, None)
        if cookie:
            forwarded.append(("cookie", "; ".join(f"{k}={m.value}" for k, m in cookie.items())))
        url = _target(scope)

        async def body() -> AsyncIterator[bytes]:
            while True:
                message: Message = await receive()
                if message["type"] != "http.request":
                    return
                yield message.get("body", b"")
                if not message.get("more_body", False):
                    return

        try:
            upstream, client = await self._client(sandbox, port)
            if upstream.uds is not None:
                # Dev servers (Vite) check the Host; a remote upstream keeps its URL's own.
                forwarded.append(("host", f"localhost:{port}"))
            has_body = scope["method"] not in ("GET", "HEAD", "OPTIONS")
            request = client.build_request(
                scope["method"], url, headers=forwarded, content=body() if has_body else None
            )
            response = await client.send(request, stream=True)
        except (httpx.HTTPError, SandboxError, OSError):
            await self._drop_clients(sandbox.id)
            await self._respond(
                send,
                *_page(
                    502,
                    "The dev server is not answering",
                    f"Nothing answers on port {port} in sandbox {sandbox.id} yet. If it is still "
                    "starting, reload in a moment; "
                    f"GET /api/sandboxes/{sandbox.id}/preview shows its status and log.",
                ),
            )
            return False
        try:
            await send(
                {
                    "type": "http.response.start",
                    "status": response.status_code,
                    "headers": [
                        (k.encode("latin-1"), v.encode("latin-1"))
                        for k, v in response.headers.multi_items()
                        if k.lower() not in HOP_BY_HOP
                    ],
                }
            )
            async for chunk in response.aiter_raw():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        finally:
            await response.aclose()
        return True
