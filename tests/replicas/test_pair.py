"""Two replicas in this process (real sockets and workers, their own data dirs, one
Postgres and one Redis): a preview WebSocket through the replica without the sandbox,
and draining one replica while a run is cancelled through the other.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import InvalidStatus
from websockets.typing import Subprotocol

from sandforge.events import decode_sse
from sandforge.sandbox import Sandbox, SandboxSpec
from tests.conftest import LiveServer
from tests.dbs import database
from tests.replicas.conftest import MODEL, REDIS_URL, ask
from tests.replicas.models import HANG
from tests.server.test_preview import WS_ECHO


@pytest.fixture
async def postgres_url(tmp_path: Path) -> AsyncIterator[str]:
    async with database("postgres", tmp_path) as url:
        yield url


@pytest.fixture
async def two_replicas(postgres_url: str, make_server: Any, tmp_path: Path) -> list[LiveServer]:
    """(Set up after the database, so the servers stop before it is dropped.)"""
    prefix = f"sandforge-test-{secrets.token_hex(4)}"
    shared = {
        "database_url": postgres_url,
        "redis_url": REDIS_URL,
        "redis_prefix": prefix,
        "model": MODEL,
    }
    return [
        await make_server(data_dir=tmp_path / name, replica_id=name, **shared)
        for name in ("one", "two")
    ]


async def _open(through: LiveServer, sandbox: Sandbox, token: str | None) -> ClientConnection:
    headers = {"host": through.preview_host(sandbox.id)}
    if token is not None:
        headers["x-sandforge-preview-token"] = token
    for _ in range(200):  # the owner's heartbeat lists the sandbox; the echo server starts
        try:
            return await ws_connect(
                f"ws://127.0.0.1:{through.settings.port}/hmr",
                additional_headers=headers,
                subprotocols=[Subprotocol("vite-hmr")],
                proxy=None,
            )
        except InvalidStatus as exc:
            if exc.response.status_code not in (404, 502):
                raise
            await asyncio.sleep(0.05)
    raise AssertionError("the websocket never opened")


async def test_a_preview_websocket_is_forwarded_to_the_replica_holding_the_sandbox(
    two_replicas: list[LiveServer],
) -> None:
    owner, other = two_replicas
    sandbox = await owner.services.fleet.provider("local").create(SandboxSpec())
    try:
        await sandbox.write_file("ws_echo.py", WS_ECHO)
        await sandbox.start_process("dev", "python3 ws_echo.py 3000")
        token = (await sandbox.info()).preview_token
        async with await _open(other, sandbox, token) as ws:
            assert ws.subprotocol == "vite-hmr"
            assert await ws.recv() == "path: /hmr"
            await ws.send("hello")
            assert await ws.recv() == "echo: hello"
            await ws.send("x" * 70_000)
            assert await ws.recv() == "echo: " + "x" * 70_000
        with pytest.raises(InvalidStatus) as refused:
            await _open(other, sandbox, None)
        assert refused.value.response.status_code == 401  # the owner's rules, forwarded
    finally:
        await sandbox.delete()


async def _until(check: Any, what: str) -> Any:
    for _ in range(600):
        if found := await check():
            return found
        await asyncio.sleep(0.05)
    raise AssertionError(f"never: {what}")


async def test_a_drained_replica_takes_no_runs_and_a_run_is_cancelled_through_either(
    two_replicas: list[LiveServer],
) -> None:
    one, two = two_replicas
    drained = await two.client.post("/api/replicas/one/drain")
    assert drained.status_code == 200, drained.text
    assert drained.json()["draining"] is True

    async def one_drains() -> bool:
        health = (await one.client.get("/api/health")).json()
        return bool(health["replica"]["draining"])

    await _until(one_drains, "replica one says it drains")
    # Posted to the drained replica, the run goes to the other.
    async with one.client.stream("POST", "/api/agent/stream", json=ask(f"{HANG} x")) as posted:
        assert posted.status_code == 200
        run_id = posted.headers["x-sandforge-run-id"]

    async def runs_on_two() -> bool:
        listing = (await one.client.get("/api/replicas")).json()["replicas"]
        return any(r["id"] == "two" and run_id in r["runs"] for r in listing)

    await _until(runs_on_two, "replica two runs it")
    cancelled = await one.client.post(f"/api/runs/{run_id}/cancel")
    assert cancelled.status_code == 200, cancelled.text

    async def ended_cancelled() -> bool:
        return bool((await one.client.get(f"/api/runs/{run_id}")).json()["state"] == "cancelled")

    await _until(ended_cancelled, "the run ends cancelled")
    async with one.client.stream("GET", f"/api/runs/{run_id}/events") as stream:
        events = [event async for _, event in decode_sse(stream.aiter_lines())]
    assert events[-1].type == "error" and events[-1].data.code == "cancelled"

    unknown = await one.client.post("/api/replicas/nobody/drain")
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "replica_not_found"
