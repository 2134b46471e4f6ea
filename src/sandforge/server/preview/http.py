"""HTTP to a preview: forwarded to the sandbox's port, or served from the store.

Requests and responses stream both ways without buffering. Each sandbox port has one
pooled client (keep-alive), shared by every request to it; an error on one request
never closes the pool under the others. Hop-by-hop headers are stripped, and so are
the client's own copies of the headers sandforge adds for the upstream (a provider's
preview token), so a page can never choose them.
"""

from __future__ import annotations

import html
import mimetypes
from collections.abc import AsyncIterator
from typing import Any

import httpx
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from ...sandbox import Sandbox, SandboxError, Upstream
from ...sandbox.http import upstream_client
from ...store.errors import FileNotStored
from ...store.repo import Store
from .auth import TOKEN_COOKIE, TOKEN_HEADER
from .inject import FRAME_COOKIE, Injection, injected_headers

OUR_COOKIES = frozenset({TOKEN_COOKIE, FRAME_COOKIE})
BODILESS = frozenset({"GET", "HEAD", "OPTIONS"})

HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
    }
)


def page(status: int, title: str, detail: str) -> HTMLResponse:
    """sandforge's own page for a preview that cannot be shown, saying why and what to do."""
    body = (
        "<!doctype html><html lang=en><meta charset=utf-8>"
        f"<title>{html.escape(title)}</title>"
        "<body style='font:16px system-ui;max-width:40rem;margin:4rem auto;padding:0 1rem'>"
        f"<h1>{html.escape(title)}</h1><p>{html.escape(detail)}</p>"
        "<p style='opacity:.6'>sandforge preview</p></body></html>"
    )
    return HTMLResponse(body, status_code=status, headers={"cache-control": "no-store"})


def raw_target(scope: Scope) -> str:
    """The request target as the client sent it: raw path (still percent-encoded) and query."""
    query: str = scope.get("query_string", b"").decode("latin-1")
    path: str = scope.get("raw_path", scope["path"].encode()).decode("latin-1").split("?")[0]
    return path + (f"?{query}" if query else "")


def forwarded_headers(
    request: Request, upstream: Upstream, port: int, identity: bool = False
) -> list[tuple[str, str]]:
    """The client's headers minus hop-by-hop, ours (token, cookies) and the upstream's own;
    with `identity`, asking for an uncompressed body (one the proxy can add scripts to)."""
    ours = {TOKEN_HEADER, "cookie", *(name.lower() for name in upstream.headers)}
    if identity:
        ours.add("accept-encoding")
    headers = [(k, v) for k, v in request.headers.items() if k not in HOP_BY_HOP and k not in ours]
    cookies = [f"{k}={v}" for k, v in request.cookies.items() if k not in OUR_COOKIES]
    if cookies:
        headers.append(("cookie", "; ".join(cookies)))
    if upstream.uds is not None:
        # Dev servers (Vite) check the Host; a remote upstream keeps its URL's own.
        headers.append(("host", f"localhost:{port}"))
    return headers


class StoredFilesServer:
    """The persistent flow: a project's files straight from the store."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def response(self, project_id: str, url_path: str) -> Response:
        path = url_path.lstrip("/")
        if path == "" or path.endswith("/"):
            path += "index.html"
        try:
            content = await self.store.read_file(project_id, path)
        except FileNotStored:
            return page(404, "Not found", f"Project {project_id} has no file {path}.")
        return file_response(path, content)


def file_response(path: str, content: bytes) -> Response:
    """A stored file, typed by its name; revalidated on each use, as it can change."""
    media_type = mimetypes.guess_type(path)[0] or "application/octet-stream"
    if media_type.startswith("text/") or media_type == "application/javascript":
        media_type += "; charset=utf-8"
    return Response(
        content,
        media_type=media_type,
        headers={"cache-control": "no-cache", "x-content-type-options": "nosniff"},
    )


class UpstreamPool:
    """One pooled client per sandbox port, closed only when that sandbox changes."""

    def __init__(self) -> None:
        self._clients: dict[tuple[str, int], tuple[Upstream, httpx.AsyncClient]] = {}

    async def get(self, sandbox: Sandbox, port: int) -> tuple[Upstream, httpx.AsyncClient]:
        key = (sandbox.id, port)
        cached = self._clients.get(key)
        if cached is None:
            upstream = await sandbox.upstream(port)
            cached = upstream, upstream_client(upstream, timeout=None)
            self._clients[key] = cached
        return cached

    def forget(self, sandbox_id: str) -> list[httpx.AsyncClient]:
        """Stop handing out a changed sandbox's clients; the caller closes them."""
        gone = [key for key in self._clients if key[0] == sandbox_id]
        return [self._clients.pop(key)[1] for key in gone]

    async def aclose(self) -> None:
        for _, client in self._clients.values():
            await client.aclose()
        self._clients.clear()


async def _request_body(receive: Receive) -> AsyncIterator[bytes]:
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return
        yield message.get("body", b"")
        if not message.get("more_body", False):
            return


class Forwarder:
    def __init__(self, pool: UpstreamPool) -> None:
        self.pool = pool

    async def forward(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        sandbox: Sandbox,
        port: int,
        injection: Injection | None = None,
    ) -> bool:
        """Forward one request, with `injection`'s scripts in a page it answers with; False
        (after answering 502) if the dev server did not answer."""
        request = Request(scope, receive)
        identity = injection is not None
        try:
            try:
                response = await self._send(request, scope, receive, sandbox, port, identity)
            except httpx.RemoteProtocolError:
                if request.method not in BODILESS:
                    raise
                # A kept-alive connection the dev server closed as this request left (Node
                # closes idle ones after 5 s, as Vite's first load waits for its optimizer).
                response = await self._send(request, scope, receive, sandbox, port, identity)
        except (httpx.HTTPError, SandboxError, OSError):
            await page(
                502,
                "The dev server is not answering",
                f"Nothing answers on port {port} in sandbox {sandbox.id} yet. If it is still "
                "starting, reload in a moment; "
                f"GET /api/sandboxes/{sandbox.id}/preview shows its status and log.",
            )(scope, receive, send)
            return False
        if injection is not None and injection.wants(
            request.method,
            response.status_code,
            response.headers.get("content-type", ""),
            response.headers.get("content-encoding", ""),
        ):
            await _relay_injected(response, injection, scope, receive, send)
        else:
            await relay_response(response, scope, receive, send)
        return True

    async def _send(
        self,
        request: Request,
        scope: Scope,
        receive: Receive,
        sandbox: Sandbox,
        port: int,
        identity: bool,
    ) -> httpx.Response:
        upstream, client = await self.pool.get(sandbox, port)
        has_body = request.method not in BODILESS
        upstream_request = client.build_request(
            request.method,
            raw_target(scope),
            headers=forwarded_headers(request, upstream, port, identity),
            content=_request_body(receive) if has_body else None,
        )
        return await client.send(upstream_request, stream=True)


def _end_to_end(response: httpx.Response) -> list[tuple[str, str]]:
    return [(k, v) for k, v in response.headers.multi_items() if k.lower() not in HOP_BY_HOP]


async def _relay_injected(
    response: httpx.Response, injection: Injection, scope: Scope, receive: Receive, send: Send
) -> None:
    """A page, read whole (pages are small), with the editor frame's scripts added."""
    try:
        body = await response.aread()
    except httpx.HTTPError:
        cut = page(502, "The dev server stopped mid-page", "Reload in a moment.")
        await cut(scope, receive, send)
        return
    finally:
        await response.aclose()
    with_scripts = injection.into(body)
    injected = Response(with_scripts, status_code=response.status_code)
    injected.raw_headers = injected_headers(_end_to_end(response), len(with_scripts))
    await injected(scope, receive, send)


async def relay_response(
    response: httpx.Response, scope: Scope, receive: Receive, send: Send
) -> None:
    """The upstream response, streamed as it comes. Its Content-Length stays, so a client
    can tell a body cut short by a dying dev server from a whole one."""
    headers: list[tuple[bytes, bytes]] = [
        (k.encode("latin-1"), v.encode("latin-1")) for k, v in _end_to_end(response)
    ]

    async def body() -> AsyncIterator[bytes]:
        try:
            async for chunk in response.aiter_raw():
                yield chunk
        finally:
            await response.aclose()

    relay: Any = StreamingResponse(body(), status_code=response.status_code)
    relay.raw_headers = headers
    await relay(scope, receive, send)
