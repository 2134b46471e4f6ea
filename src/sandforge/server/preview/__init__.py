"""The host-based preview proxy: `{port}-{id}.{preview domain}` → that sandbox's port.

It sits in front of the app as ASGI middleware: a request for a preview host never
reaches the API. `route` finds what the host names, `auth` checks the token, `http`
and `ws` forward (or serve the persistent flow's stored files).
"""

from __future__ import annotations

import asyncio

from starlette.requests import HTTPConnection
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket

from ...errors import NotFound
from ...projects.service import Projects
from ...sandbox import Sandbox, SandboxError, SandboxNotFound
from ...sandbox.fleet import SandboxFleet
from ...store.published import PublishedSites
from .auth import TOKEN_HEADER, carries_token, cookie_redirect
from .http import Forwarder, StoredFilesServer, UpstreamPool, page
from .inject import frame_response, inject_stored, injection, marker_redirect
from .published import PublishedServer, parse_published_host
from .replicas import ReplicaForwarder
from .route import PreviewHost, PreviewRoutes, PreviewStopped, Route, parse_preview_host
from .ws import forward_websocket, refuse

__all__ = ["PreviewProxy", "parse_preview_host"]


def _host(scope: Scope) -> str:
    """The Host header; where a client sent several, the last (the first is often a default
    its library added before the caller's own)."""
    hosts = HTTPConnection(scope).headers.getlist("host")
    return hosts[-1] if hosts else ""


class PreviewProxy:
    def __init__(self, app: ASGIApp, domain: str) -> None:
        self.app = app
        self.domain = domain
        self.pool = UpstreamPool()
        self.forwarder = Forwarder(self.pool)
        self._routes: PreviewRoutes | None = None
        self._stored: StoredFilesServer | None = None
        self._published: PublishedServer | None = None
        self.replicas: ReplicaForwarder | None = None
        """With replicas: forwards previews of other replicas' local sandboxes to them."""
        self._closing: set[asyncio.Task[None]] = set()
        self.stopping = asyncio.Event()

    def attach(self, projects: Projects, fleet: SandboxFleet, stopping: asyncio.Event) -> None:
        """Serve previews of these projects and sandboxes (once the server has started); the
        proxy's own streams end when `stopping` is set."""
        self.stopping = stopping
        self._routes = PreviewRoutes(projects, fleet)
        self._stored = StoredFilesServer(projects.store)
        self._published = PublishedServer(PublishedSites(projects.store))
        if projects.replica is not None:
            self.replicas = ReplicaForwarder(projects.replica, projects.store)
        fleet.on_change(self._sandbox_changed)

    @property
    def routes(self) -> PreviewRoutes:
        assert self._routes is not None, "PreviewProxy.attach() has not run"
        return self._routes

    @property
    def stored(self) -> StoredFilesServer:
        assert self._stored is not None, "PreviewProxy.attach() has not run"
        return self._stored

    async def aclose(self) -> None:
        await self.pool.aclose()
        if self.replicas is not None:
            await self.replicas.aclose()
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)

    def _sandbox_changed(self, changed_id: str) -> None:
        """Close a changed sandbox's pooled connections (they would be dead or stale)."""
        for client in self.pool.forget(changed_id):
            task = asyncio.get_running_loop().create_task(client.aclose())
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, receive, send)
            return
        host_header = _host(scope)
        slug = parse_published_host(host_header, self.domain)
        if slug is not None and self._published is not None:
            await self._published_site(scope, receive, send, slug)
            return
        host = parse_preview_host(host_header, self.domain)
        if host is None:
            await self.app(scope, receive, send)
            return
        owner = None
        if self.replicas is not None:
            owner = await self.replicas.owner(HTTPConnection(scope), host)
        if scope["type"] == "websocket":
            websocket = WebSocket(scope, receive, send)
            if (await websocket.receive())["type"] != "websocket.connect":
                return
            if owner is not None and self.replicas is not None:
                await self.replicas.websocket(websocket, owner, host_header)
            else:
                await self._websocket(websocket, host)
        elif owner is not None and self.replicas is not None:
            await self.replicas.http(scope, receive, send, owner, host_header)
        else:
            await self._http(scope, receive, send, host)

    async def _published_site(self, scope: Scope, receive: Receive, send: Send, slug: str) -> None:
        """Public: no token. Static files only, so a websocket has nothing to reach."""
        assert self._published is not None
        if scope["type"] == "websocket":
            websocket = WebSocket(scope, receive, send)
            if (await websocket.receive())["type"] == "websocket.connect":
                await refuse(websocket, page(404, "No websocket", "A published app is static."))
            return
        response = await self._published.response(slug, scope["path"])
        await response(scope, receive, send)

    async def _open(self, connection: HTTPConnection, host: PreviewHost) -> Route | Response:
        """The route, or the response that explains why there is none for this client."""
        try:
            route = await self.routes.resolve(host.target_id)
        except (NotFound, SandboxNotFound):
            return page(
                404,
                "Preview not found",
                f"There is no sandbox or project {host.target_id}. It may have been deleted.",
            )
        except SandboxError as exc:
            return page(502, "The preview is unavailable", exc.message)
        if not route.public and not carries_token(connection, route.tokens()):
            return page(
                401,
                "This preview is private",
                "Open the share link that includes its token (?token=...), "
                f"or send the {TOKEN_HEADER} header.",
            )
        return route

    async def _serving(self, host: PreviewHost, route: Route) -> Sandbox | Response:
        try:
            return await self.routes.serving(host.target_id, route)
        except PreviewStopped:
            return page(
                503,
                "This preview is stopped",
                f"Sandbox {host.target_id} is stopped. Start it from the sandboxes page "
                f"(or POST /api/sandboxes/{host.target_id}/start) and reload.",
            )
        except SandboxError as exc:
            # Out of capacity (429, 507) or not yet up (503) is the server's state, not the
            # dev server's fault.
            status = 503 if exc.http_status in (429, 503, 507) else 502
            return page(status, "The preview could not be started", exc.message)

    def _own_answer(self, connection: HTTPConnection, route: Route) -> Response | None:
        """The proxy's own answers: redirects that set its cookies, the editor frame's files."""
        if not route.public and (redirect := cookie_redirect(connection, route.tokens())):
            return redirect
        return marker_redirect(connection, route) or frame_response(
            connection, route, self.routes.projects.supervisor.feeds, self.stopping
        )

    async def _http(self, scope: Scope, receive: Receive, send: Send, host: PreviewHost) -> None:
        connection = HTTPConnection(scope)
        route = await self._open(connection, host)
        if isinstance(route, Response):
            await route(scope, receive, send)
            return
        if (answer := self._own_answer(connection, route)) is not None:
            await answer(scope, receive, send)
            return
        scripts = injection(connection, route)
        if route.stored:
            assert route.project is not None
            stored = await self.stored.response(route.project.id, scope["path"])
            await inject_stored(stored, scripts)(scope, receive, send)
            return
        sandbox = await self._serving(host, route)
        if isinstance(sandbox, Response):
            await sandbox(scope, receive, send)
        elif not await self.forwarder.forward(scope, receive, send, sandbox, host.port, scripts):
            self.routes.drop(host.target_id)

    async def _websocket(self, websocket: WebSocket, host: PreviewHost) -> None:
        route = await self._open(websocket, host)
        if isinstance(route, Response):
            await refuse(websocket, route)
            return
        if route.stored:
            await refuse(websocket, page(404, "No websocket", "Stored files have no websocket."))
            return
        sandbox = await self._serving(host, route)
        if isinstance(sandbox, Response):
            await refuse(websocket, sandbox)
            return
        unreachable = page(502, "The dev server refused the websocket", "Reload in a moment.")
        await forward_websocket(websocket, sandbox, host.port, unreachable)
