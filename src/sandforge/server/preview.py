"""The host-based preview proxy: `{port}-{sandboxId}.{preview_domain}` → the sandbox's port.

It sits in front of the app as ASGI middleware. Requests stream both ways
without buffering; hop-by-hop headers are stripped. Previews are private: a
`?token=` sets a host-only cookie and redirects to the clean URL; the header
`x-sandforge-preview-token` works too; public sandboxes need neither.
"""

from __future__ import annotations

import html
import re
import secrets
from collections.abc import AsyncIterator
from http.cookies import SimpleCookie
from urllib.parse import parse_qsl, urlencode

import httpx
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..sandbox import Sandbox, SandboxError, SandboxNotFound, SandboxState
from ..sandbox.http import upstream_client
from .services import Services

TOKEN_COOKIE = "sandforge_preview_token"
TOKEN_HEADER = "x-sandforge-preview-token"
TOKEN_QUERY = "token"
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


def _token_cookie(token: str) -> bytes:
    """Host-only (no Domain), so it never reaches another sandbox's preview."""
    return f"{TOKEN_COOKIE}={token}; Path=/; HttpOnly; SameSite=Lax".encode()


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
        self._clients: dict[tuple[str, int], httpx.AsyncClient] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, receive, send)
            if self._clients:
                for client in self._clients.values():
                    await client.aclose()
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers", [])}
        target = parse_preview_host(headers.get("host", ""), self.services.settings.preview_domain)
        if target is None:
            await self.app(scope, receive, send)
            return
        if scope["type"] != "http":
            # WebSocket previews arrive with the HMR work; until then refuse cleanly.
            await send({"type": "websocket.close", "code": 1011})
            return
        await self._proxy_http(scope, receive, send, headers, *target)

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

    async def _proxy_http(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        headers: dict[str, str],
        port: int,
        sandbox_id: str,
    ) -> None:
        try:
            sandbox = await self.services.find_sandbox(sandbox_id)
            info = await sandbox.info()
        except SandboxNotFound:
            await self._respond(
                send,
                *_page(
                    404,
                    "Preview not found",
                    f"There is no sandbox {sandbox_id}. It may have been deleted.",
                ),
            )
            return
        query = parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
        given_query = next((v for k, v in query if k == TOKEN_QUERY), None)
        if not info.public:
            cookie = SimpleCookie(headers.get("cookie", ""))
            candidates = [
                given_query,
                headers.get(TOKEN_HEADER),
                cookie[TOKEN_COOKIE].value if TOKEN_COOKIE in cookie else None,
            ]
            if not any(
                c is not None and secrets.compare_digest(c, info.preview_token) for c in candidates
            ):
                await self._respond(
                    send,
                    *_page(
                        401,
                        "This preview is private",
                        "Open the share link that includes its token (?token=...), "
                        f"or send the {TOKEN_HEADER} header.",
                    ),
                )
                return
            if given_query is not None:
                clean = urlencode([(k, v) for k, v in query if k != TOKEN_QUERY])
                location = scope["path"] + (f"?{clean}" if clean else "")
                await self._respond(
                    send,
                    302,
                    b"",
                    [
                        (b"location", location.encode()),
                        (
                            b"set-cookie",
                            _token_cookie(info.preview_token),
                        ),
                    ],
                )
                return
        if info.state != SandboxState.STARTED:
            await self._respond(
                send,
                *_page(
                    503,
                    "This preview is stopped",
                    f"Sandbox {sandbox_id} is stopped. Start it from the sandboxes page "
                    f"(or POST /api/sandboxes/{sandbox_id}/start) and reload.",
                ),
            )
            return
        await self._forward(scope, receive, send, headers, sandbox, port)

    async def _client(self, sandbox: Sandbox, port: int) -> httpx.AsyncClient:
        key = (sandbox.id, port)
        client = self._clients.get(key)
        if client is None:
            client = upstream_client(await sandbox.upstream(port), timeout=None)
            self._clients[key] = client
        return client

    async def _forward(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        headers: dict[str, str],
        sandbox: Sandbox,
        port: int,
    ) -> None:
        forwarded = [
            (k, v)
            for k, v in headers.items()
            if k not in HOP_BY_HOP and k != TOKEN_HEADER and k != "cookie"
        ]
        cookie = SimpleCookie(headers.get("cookie", ""))
        cookie.pop(TOKEN_COOKIE, None)
        if cookie:
            forwarded.append(("cookie", "; ".join(f"{k}={m.value}" for k, m in cookie.items())))
        forwarded.append(("host", f"localhost:{port}"))
        query = scope.get("query_string", b"").decode("latin-1")
        url = scope.get("raw_path", scope["path"].encode()).decode("latin-1").split("?")[0]
        if query:
            url += "?" + query

        async def body() -> AsyncIterator[bytes]:
            while True:
                message: Message = await receive()
                if message["type"] != "http.request":
                    return
                yield message.get("body", b"")
                if not message.get("more_body", False):
                    return

        try:
            client = await self._client(sandbox, port)
            has_body = scope["method"] not in ("GET", "HEAD", "OPTIONS")
            request = client.build_request(
                scope["method"], url, headers=forwarded, content=body() if has_body else None
            )
            response = await client.send(request, stream=True)
        except (httpx.HTTPError, SandboxError):
            self._clients.pop((sandbox.id, port), None)
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
            return
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
