"""Scripts the proxy adds to the editor's own preview frame, and to nobody else's view."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from sandforge.events import CompleteEvent
from sandforge.server.preview.auth import TOKEN_COOKIE
from sandforge.server.preview.inject import FRAME_COOKIE
from tests.conftest import LiveServer
from tests.server.test_preview import serving_sandbox

SCRIPT_TAG = re.compile(
    r'<script src="/\.sandforge/frame/reload\.js" data-sandforge-since="[\d.]+"></script>'
)
PROMPT = {"messages": [{"role": "user", "content": "Create a tip calculator"}]}


async def build(server: LiveServer, endpoint: str) -> CompleteEvent:
    complete = (await server.stream(endpoint, PROMPT))[-1][1]
    assert isinstance(complete, CompleteEvent), complete
    return complete


async def visit(
    server: LiveServer, host: str, path: str, cookies: dict[str, str]
) -> httpx.Response:
    cookie = "; ".join(f"{k}={v}" for k, v in cookies.items())
    return await server.client.get(path, headers={"host": host, "cookie": cookie})


def set_cookies(response: httpx.Response) -> dict[str, str]:
    """name → the whole Set-Cookie header, for each cookie the response sets."""
    return {c.split("=", 1)[0]: c for c in response.headers.get_list("set-cookie")}


async def open_as_editor(server: LiveServer, host: str, token: str) -> dict[str, str]:
    """The editor iframe's first visit, `?token=...&sandforge-frame=editor`, redirect by
    redirect; returns the cookies the browser ends with."""
    cookies: dict[str, str] = {}
    path = f"/?token={token}&sandforge-frame=editor"
    for _ in range(3):
        response = await visit(server, host, path, cookies)
        if response.status_code != 302:
            break
        for name, header in set_cookies(response).items():
            cookies[name] = header.split(";", 1)[0].split("=", 1)[1]
        path = response.headers["location"]
    assert path == "/", path
    return cookies


@pytest.mark.parametrize("endpoint", ["/api/agent/stream-daytona", "/api/agent/stream"])
async def test_the_owners_editor_frame_gets_the_reload_helper(
    server: LiveServer, endpoint: str
) -> None:
    complete = await build(server, endpoint)
    assert complete.data.projectId is not None and complete.data.accessToken is not None
    host = server.preview_host(complete.data.projectId)
    plain = await server.preview_get(complete.data.projectId, token=complete.data.accessToken)
    assert "/.sandforge/" not in plain.text  # the owner's own tab, without the marker

    first = await visit(
        server, host, f"/?token={complete.data.accessToken}&sandforge-frame=editor", {}
    )
    assert first.headers["location"] == "/?sandforge-frame=editor"
    cookies = await open_as_editor(server, host, complete.data.accessToken)
    assert cookies == {TOKEN_COOKIE: complete.data.accessToken, FRAME_COOKIE: "editor"}

    page = await visit(server, host, "/", cookies)
    assert page.status_code == 200
    assert len(SCRIPT_TAG.findall(page.text)) == 1
    # Right after <head>, and otherwise the page is the app's own, never cached.
    assert SCRIPT_TAG.sub("", page.text) == plain.text
    assert re.search(r"<head[^>]*>" + SCRIPT_TAG.pattern, page.text)
    assert page.headers["cache-control"] == "no-store"
    assert int(page.headers["content-length"]) == len(page.content)
    styles = await visit(server, host, "/styles.css", cookies)
    assert "/.sandforge/" not in styles.text  # only pages

    script = await visit(server, host, "/.sandforge/frame/reload.js", cookies)
    assert script.status_code == 200
    assert script.headers["content-type"].startswith("text/javascript")
    assert "/.sandforge/frame/changes" in script.text

    # The changes feed: `stale` at once for a page served before the run's writes.
    async with server.client.stream(
        "GET",
        "/.sandforge/frame/changes?since=0",
        headers={
            "host": host,
            "cookie": f"{TOKEN_COOKIE}={cookies[TOKEN_COOKIE]}; {FRAME_COOKIE}=editor",
        },
    ) as changes:
        assert changes.headers["content-type"].startswith("text/event-stream")
        first_line = await anext(changes.aiter_lines())
    assert first_line == "event: stale"


async def test_share_links_and_public_previews_never_get_it(server: LiveServer) -> None:
    complete = await build(server, "/api/agent/stream-daytona")
    project_id = complete.data.projectId
    assert project_id is not None
    host = server.preview_host(project_id)
    share: dict[str, Any] = (
        await server.client.post(f"/api/projects/{project_id}/shares", json={})
    ).json()
    share_token = share["url"].split("token=")[1]

    # The marker from a share link's visitor sets no editor cookie...
    cookies = await open_as_editor(server, host, share_token)
    assert cookies == {TOKEN_COOKIE: share_token}
    # ...and a forged one gets nothing either: not the script, not the changes feed.
    forged = {TOKEN_COOKIE: share_token, FRAME_COOKIE: "editor"}
    page = await visit(server, host, "/", forged)
    assert page.status_code == 200 and "<h1>Tip Calculator</h1>" in page.text
    assert "/.sandforge/" not in page.text
    for path in ("/.sandforge/frame/reload.js", "/.sandforge/frame/changes"):
        assert (await visit(server, host, path, forged)).status_code == 404

    public = await serving_sandbox(server, public=True)
    try:
        public_host = server.preview_host(public.id)
        redirect = await visit(server, public_host, "/?sandforge-frame=editor", {})
        assert redirect.headers["location"] == "/"
        assert FRAME_COOKIE not in set_cookies(redirect)
        page = await visit(server, public_host, "/", {FRAME_COOKIE: "editor"})
        assert page.text == "<h1>from the sandbox</h1>"
    finally:
        await public.delete()
