"""Scripts the proxy adds to the editor's own preview frame, and never to anyone else's view.

The UI's editor iframe opens a project's preview with `?sandforge-frame=editor`. If that
request is the owner's (it carries the project's own token, not a share link's), the
proxy answers with a host-only cookie and a redirect to the clean URL. From then on,
each text/html page that browser loads from the preview gets
`<script src="/.sandforge/frame/<name>.js">` for every frame script its project type
wants; the proxy serves those itself, from web/static/frame/. Share links, public
previews and the owner's own tabs opened without the marker get the app's pages
untouched.

The scripts talk only to the preview's own origin, under /.sandforge/frame/: the
preview origin is hostile, so nothing here reaches the API or carries its credentials.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from starlette.requests import HTTPConnection
from starlette.responses import FileResponse, Response, StreamingResponse

from ...events import Event, encode_sse, encode_sse_comment
from ...runs.fanout import ProjectFeeds, changes_files
from ...templates import ProjectTemplate, get_template
from ..sse import SSE_HEADERS, until_stopping
from .auth import carries_token, redirect_setting
from .route import Route

FRAME_QUERY = "sandforge-frame"
FRAME_COOKIE = "sandforge_frame"
EDITOR = "editor"
FRAME_PREFIX = "/.sandforge/frame/"
CHANGES_PATH = f"{FRAME_PREFIX}changes"
"""Server-Sent Events: one frame each time a run changes the project's files."""
SINCE_QUERY = "since"
SCRIPTS_DIR = Path(__file__).parents[1] / "web" / "static" / "frame"

_HEAD = re.compile(rb"<head\b[^>]*>", re.IGNORECASE)
_HTML = re.compile(rb"<html\b[^>]*>", re.IGNORECASE)
_STALE_FRAME = b"event: stale\ndata: {}\n\n"


@dataclass(frozen=True)
class FrameScript:
    name: str
    """Served as /.sandforge/frame/<name>.js from web/static/frame/<name>.js."""
    wanted: Callable[[ProjectTemplate], bool]


FRAME_SCRIPTS: tuple[FrameScript, ...] = (
    # Reloads the page after each write, where the dev server does not update it itself.
    FrameScript("reload", lambda template: not template.reloads_itself),
)


def _is_owner(connection: HTTPConnection, route: Route) -> bool:
    """The project's own token, not a share link's: only the owner's UI has it."""
    return route.project is not None and carries_token(connection, [route.token])


def marker_redirect(connection: HTTPConnection, route: Route) -> Response | None:
    """For a request with the editor marker: drop it from the URL, and mark this browser's
    frame as the editor's if (only if) the request is the owner's."""
    if connection.query_params.get(FRAME_QUERY) is None:
        return None
    owner = connection.query_params.get(FRAME_QUERY) == EDITOR and _is_owner(connection, route)
    return redirect_setting(connection, FRAME_QUERY, FRAME_COOKIE if owner else None, EDITOR)


def in_editor(connection: HTTPConnection, route: Route) -> bool:
    return connection.cookies.get(FRAME_COOKIE) == EDITOR and _is_owner(connection, route)


@dataclass(frozen=True)
class Injection:
    """The script tags for one page the editor's frame loads."""

    scripts: tuple[str, ...]
    served_at: float
    """When the proxy took the request: the reload helper asks for changes since then."""

    def wants(self, method: str, status: int, content_type: str, encoding: str) -> bool:
        has_body = method != "HEAD" and status not in (204, 206, 304)
        identity = encoding in ("", "identity")
        return has_body and identity and content_type.lower().startswith("text/html")

    def into(self, page: bytes) -> bytes:
        tags = "".join(
            f'<script src="{FRAME_PREFIX}{name}.js" data-sandforge-since="{self.served_at:.6f}">'
            "</script>"
            for name in self.scripts
        ).encode()
        anchor = _HEAD.search(page) or _HTML.search(page)
        at = anchor.end() if anchor is not None else 0
        return page[:at] + tags + page[at:]


def injected_headers(headers: Iterable[tuple[str, str]], length: int) -> list[tuple[bytes, bytes]]:
    """A page's headers once its body changed: its new length, and never cached, so the
    page with the scripts is never what another view of the preview gets from a cache."""
    stale = {"content-length", "etag", "last-modified", "cache-control"}
    kept = [(k, v) for k, v in headers if k.lower() not in stale]
    kept += [("content-length", str(length)), ("cache-control", "no-store")]
    return [(k.encode("latin-1"), v.encode("latin-1")) for k, v in kept]


def inject_stored(response: Response, into: Injection | None) -> Response:
    """A stored file's response (the persistent flow), with the scripts if it is a page."""
    content_type = response.headers.get("content-type", "")
    if into is None or not into.wants("GET", response.status_code, content_type, ""):
        return response
    page = into.into(bytes(response.body))
    injected = Response(page, status_code=response.status_code)
    injected.raw_headers = injected_headers(response.headers.items(), len(page))
    return injected


def injection(connection: HTTPConnection, route: Route) -> Injection | None:
    """What to add to the pages of this request, if it comes from the editor's frame."""
    if route.project is None or not in_editor(connection, route):
        return None
    template = get_template(route.project.project_type)
    scripts = tuple(script.name for script in FRAME_SCRIPTS if script.wanted(template))
    return Injection(scripts, time.time()) if scripts else None


def frame_response(
    connection: HTTPConnection, route: Route, feeds: ProjectFeeds, stopping: asyncio.Event
) -> Response | None:
    """The proxy's own answer for /.sandforge/frame/..., or None for any other path."""
    path = connection.url.path
    if not path.startswith(FRAME_PREFIX):
        return None
    if route.project is None or not in_editor(connection, route):
        return Response("Not found", status_code=404, media_type="text/plain")
    if path == CHANGES_PATH:
        return _changes(connection, route.project.id, feeds, stopping)
    name = path.removeprefix(FRAME_PREFIX).removesuffix(".js")
    if not path.endswith(".js") or name not in {script.name for script in FRAME_SCRIPTS}:
        return Response("Not found", status_code=404, media_type="text/plain")
    return FileResponse(
        SCRIPTS_DIR / f"{name}.js",
        media_type="text/javascript; charset=utf-8",
        headers={"cache-control": "no-cache"},
    )


def _changes(
    connection: HTTPConnection, project_id: str, feeds: ProjectFeeds, stopping: asyncio.Event
) -> StreamingResponse:
    """Each run's file changes as they happen; first a `stale` frame if the files changed
    since the page was served (while it reloaded, say). It ends when the server stops."""
    try:
        since = float(connection.query_params.get(SINCE_QUERY, ""))
    except ValueError:
        since = time.time()

    async def changes(queue: asyncio.Queue[Event]) -> AsyncIterator[tuple[int, Event]]:
        seq = 0
        while True:
            event = await queue.get()
            if changes_files(event):
                seq += 1
                yield seq, event

    async def frames() -> AsyncIterator[bytes]:
        queue = feeds.listen(project_id)
        try:
            stale = feeds.files_changed_at(project_id) > since
            yield _STALE_FRAME if stale else encode_sse_comment("subscribed")
            async for item in until_stopping(changes(queue), stopping):
                if item is None:
                    return
                yield encode_sse(*item)
        finally:
            feeds.unlisten(project_id, queue)

    return StreamingResponse(frames(), media_type="text/event-stream", headers=SSE_HEADERS)
