"""The host-based preview proxy: routing, private-by-default tokens, failure pages."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import InvalidStatus
from websockets.typing import Subprotocol

from sandforge.sandbox import Sandbox, SandboxSpec, SandboxState
from sandforge.sandbox.http import wait_until_ready
from sandforge.server.preview.auth import TOKEN_COOKIE
from sandforge.server.preview.route import PreviewHost, parse_preview_host
from tests.conftest import LiveServer


async def serving_sandbox(server: LiveServer, public: bool = False) -> Sandbox:
    sandbox = await server.services.fleet.provider("local").create(SandboxSpec(public=public))
    await sandbox.write_file("index.html", b"<h1>from the sandbox</h1>")
    await sandbox.write_file("big.bin", bytes(range(256)) * 4096)
    await sandbox.start_process("dev", "python3 -m http.server 3000 --bind 127.0.0.1")
    assert (await wait_until_ready(sandbox, 3000, "dev", 30)).ready
    return sandbox


@pytest.fixture
async def sandbox(server: LiveServer) -> AsyncIterator[Sandbox]:
    sandbox = await serving_sandbox(server)
    yield sandbox
    await sandbox.delete()


def test_preview_hosts_parse() -> None:
    expected = PreviewHost(3000, "sbabc123")
    assert parse_preview_host("3000-sbabc123.localhost:8000", "localhost") == expected
    assert parse_preview_host("3000-sbabc123.localhost", "localhost") == expected
    assert parse_preview_host("127.0.0.1:8000", "localhost") is None
    assert parse_preview_host("3000-sbabc.example.com", "localhost") is None
    assert parse_preview_host("99999-sbabc.localhost", "localhost") is None


async def test_private_by_default(server: LiveServer, sandbox: Sandbox) -> None:
    missing = await server.preview_get(sandbox.id)
    assert missing.status_code == 401
    assert "private" in missing.text
    wrong = await server.preview_get(sandbox.id, token="not-the-token")
    assert wrong.status_code == 401


async def test_header_token_serves_the_file(server: LiveServer, sandbox: Sandbox) -> None:
    token = (await sandbox.info()).preview_token
    page = await server.preview_get(sandbox.id, token=token)
    assert page.status_code == 200
    assert page.text == "<h1>from the sandbox</h1>"
    big = await server.preview_get(sandbox.id, "/big.bin", token=token)
    assert big.content == bytes(range(256)) * 4096


async def test_query_token_sets_a_cookie_and_redirects_to_the_clean_url(
    server: LiveServer, sandbox: Sandbox
) -> None:
    token = (await sandbox.info()).preview_token
    host = server.preview_host(sandbox.id)
    first = await server.client.get(f"/index.html?a=1&token={token}", headers={"host": host})
    assert first.status_code == 302
    assert first.headers["location"] == "/index.html?a=1"
    cookie = first.headers["set-cookie"]
    assert cookie.startswith(f"{TOKEN_COOKIE}={token}") and "HttpOnly" in cookie
    # Kept inside the sandforge page's iframe too: *.localhost counts as a secure origin.
    assert "SameSite=None; Secure; Partitioned" in cookie
    assert "Domain" not in cookie  # host-only: it never reaches another sandbox's preview
    second = await server.client.get(
        "/index.html?a=1", headers={"host": host, "cookie": f"{TOKEN_COOKIE}={token}"}
    )
    assert second.status_code == 200
    assert second.text == "<h1>from the sandbox</h1>"


async def test_public_sandbox_needs_no_token(server: LiveServer) -> None:
    sandbox = await serving_sandbox(server, public=True)
    try:
        page = await server.preview_get(sandbox.id)
        assert page.status_code == 200
    finally:
        await sandbox.delete()


async def test_unknown_sandbox_is_a_404_page(server: LiveServer) -> None:
    page = await server.preview_get("sb000000000000")
    assert page.status_code == 404
    assert "no sandbox or project sb000000000000" in page.text


async def test_stopped_sandbox_says_so_and_start_brings_it_back(
    server: LiveServer, sandbox: Sandbox
) -> None:
    token = (await sandbox.info()).preview_token
    assert (await server.client.post(f"/api/sandboxes/{sandbox.id}/stop")).json()[
        "state"
    ] == "stopped"
    page = await server.preview_get(sandbox.id, token=token)
    assert page.status_code == 503
    assert "stopped" in page.text
    status = await server.client.get(f"/api/sandboxes/{sandbox.id}/preview")
    assert status.json()["status"] == "stopped"
    started = await server.client.post(f"/api/sandboxes/{sandbox.id}/start")
    assert started.json()["state"] == "started"
    assert (await sandbox.read_file("index.html")) == b"<h1>from the sandbox</h1>"


async def test_no_dev_server_yet_is_a_502_page(server: LiveServer) -> None:
    sandbox = await server.services.fleet.provider("local").create(SandboxSpec())
    try:
        token = (await sandbox.info()).preview_token
        page = await server.preview_get(sandbox.id, token=token)
        assert page.status_code == 502
        assert "not answering" in page.text
    finally:
        await sandbox.delete()


async def test_preview_status_reports_ready_and_the_log(
    server: LiveServer, sandbox: Sandbox
) -> None:
    token = (await sandbox.info()).preview_token
    await server.preview_get(sandbox.id, token=token)
    status = (await server.client.get(f"/api/sandboxes/{sandbox.id}/preview")).json()
    assert status["status"] == "ready"
    assert status["url"] == f"http://3000-{sandbox.id}.localhost:{server.settings.port}/"
    assert "GET / HTTP/1.1" in status["logTail"]


async def test_sandbox_api_lists_and_deletes(server: LiveServer, sandbox: Sandbox) -> None:
    listed = (await server.client.get("/api/sandboxes")).json()["sandboxes"]
    assert [s["id"] for s in listed] == [sandbox.id]
    files = (await server.client.get(f"/api/sandboxes/{sandbox.id}/files")).json()["files"]
    assert {"path": "index.html", "size": 25, "isDir": False} in files
    text = await server.client.get(f"/api/sandboxes/{sandbox.id}/files/index.html")
    assert text.text == "<h1>from the sandbox</h1>"
    escape = await server.client.get(f"/api/sandboxes/{sandbox.id}/files/..%2F..%2Fmeta.json")
    assert escape.status_code == 400
    assert (await server.client.delete(f"/api/sandboxes/{sandbox.id}")).status_code == 204
    assert (await server.client.get("/api/sandboxes")).json()["sandboxes"] == []
    assert server.sandbox_dirs() == []


WS_ECHO = (Path(__file__).parent / "ws_echo.py").read_bytes()


@pytest.fixture
async def ws_sandbox(server: LiveServer) -> AsyncIterator[Sandbox]:
    sandbox = await server.services.fleet.provider("local").create(SandboxSpec())
    await sandbox.write_file("ws_echo.py", WS_ECHO)
    await sandbox.start_process("dev", "python3 ws_echo.py 3000")
    yield sandbox
    await sandbox.delete()


async def open_ws(
    server: LiveServer, sandbox: Sandbox, path: str = "/", token: str | None = None
) -> ClientConnection:
    headers = {"host": server.preview_host(sandbox.id)}
    if token is not None:
        headers["x-sandforge-preview-token"] = token
    for _ in range(100):  # the echo server may still be starting
        try:
            return await ws_connect(
                f"ws://127.0.0.1:{server.settings.port}{path}",
                additional_headers=headers,
                subprotocols=[Subprotocol("vite-hmr")],
                proxy=None,
            )
        except InvalidStatus as exc:
            if exc.response.status_code != 502:
                raise
            await asyncio.sleep(0.05)
    raise AssertionError("the websocket never opened")


async def test_websocket_is_proxied_both_ways_with_its_subprotocol(
    server: LiveServer, ws_sandbox: Sandbox
) -> None:
    token = (await ws_sandbox.info()).preview_token
    async with await open_ws(server, ws_sandbox, "/hmr?token=vites-own", token) as ws:
        assert ws.subprotocol == "vite-hmr"
        # The app's own ?token= reaches it untouched; ours travels in the header.
        assert await ws.recv() == "path: /hmr?token=vites-own"
        await ws.send("hello")
        assert await ws.recv() == "echo: hello"
        await ws.send("x" * 70_000)
        assert await ws.recv() == "echo: " + "x" * 70_000


async def test_websocket_without_a_token_is_refused(
    server: LiveServer, ws_sandbox: Sandbox
) -> None:
    with pytest.raises(InvalidStatus) as refused:
        await open_ws(server, ws_sandbox)
    assert refused.value.response.status_code == 401


async def test_idle_sandboxes_stop_and_the_project_preview_starts_them_again(
    make_server: Any,
) -> None:
    server: LiveServer = await make_server(idle_stop_minutes=0.005)  # 0.3 s
    events = await server.stream(
        "/api/agent/stream-daytona", {"messages": [{"role": "user", "content": "Build a timer"}]}
    )
    complete = events[-1][1]
    assert complete.type == "complete"
    sandbox = await server.services.fleet.find(complete.data.sandboxId)
    for _ in range(500):
        if (await sandbox.info()).state == SandboxState.STOPPED:
            break
        await asyncio.sleep(0.01)
    assert (await sandbox.info()).state == SandboxState.STOPPED
    page = await server.preview_get(complete.data.projectId, token=complete.data.accessToken)
    assert page.status_code == 200 and "<h1>Timer</h1>" in page.text, page.text
