"""A database that goes away under a run: Postgres stopped and started, SQLite on a full disk.

Whatever the store does, a run's stream keeps flowing and ends, cancel and shutdown answer
within a bound, and once the database is back the store catches up: the run's final state,
and every event exactly once, in order.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from sandforge.events import CompleteEvent, to_json
from sandforge.store.errors import TRANSIENT
from tests.conftest import LiveServer, free_socket
from tests.dbs import PrivatePostgres, SmallDisk, private_postgres, small_disk

from .conftest import (
    Events,
    assert_stored_exactly,
    eventually,
    following,
    has_progress,
    messages,
)

PACED = "factory:tests.reliability.models:paced"
HANGS = "factory:tests.scripted.scripted_models:hangs"
OUTAGE_S = 8.0
"""How long the database stays away: the outage that used to hang runs for good."""


def free_port() -> int:
    with free_socket() as sock:
        port: int = sock.getsockname()[1]
        return port


def body(prompt: str) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": prompt}], "projectType": "web-app"}


@pytest.fixture
async def postgres() -> AsyncIterator[PrivatePostgres]:
    async with private_postgres() as cluster:
        yield cluster


async def assert_caught_up(server: LiveServer, run_id: str, state: str, events: Events) -> None:
    """Once the database is back, the store says what memory said: the run's final state,
    and every event the stream carried, each once and in order."""
    store = server.services.store

    async def all_stored() -> bool:
        try:
            return (await store.get_run(run_id)).state == state and len(
                await store.events_after(run_id, 0)
            ) >= len(events)
        except TRANSIENT:
            return False

    await eventually(all_stored, 60)
    await assert_stored_exactly(store, run_id, events)


async def test_a_run_outlives_a_postgres_outage_and_the_store_catches_up(
    postgres: PrivatePostgres, make_server: Any, tmp_path: Path
) -> None:
    url = await postgres.create_database()
    server: LiveServer = await make_server(model=PACED, database_url=url)
    release = tmp_path / "release"
    prompt = f"Build a paced page release:{release}"
    async with following(server.client, "POST", "/api/agent/stream-daytona", body(prompt)) as run:
        run_id = run.headers["x-sandforge-run-id"]
        await run.wait_for(lambda events: messages(events) >= 5, 120)

        await postgres.stop()
        loop = asyncio.get_running_loop()
        stopped_at = loop.time()
        seen = len(run.events)
        # The stream flows while the store is away...
        await run.wait_for(lambda events: len(events) >= seen + 10, 60)
        # ...and the run reaches its end (saving the version, storing the end) inside the outage.
        release.touch()
        await run.wait_for(has_progress("complete"), 120)
        await asyncio.sleep(max(0.0, OUTAGE_S - (loop.time() - stopped_at)))
        await postgres.start()

        events = await run.end(120)
    final = events[-1][1]
    assert isinstance(final, CompleteEvent), final
    assert final.data.version == 1
    assert [seq for seq, _ in events] == list(range(1, len(events) + 1))

    await assert_caught_up(server, run_id, "succeeded", events)
    versions = await server.services.store.list_versions(final.data.projectId or "")
    assert [v.number for v in versions] == [1]


async def test_cancel_answers_while_postgres_is_down(
    postgres: PrivatePostgres, make_server: Any
) -> None:
    server: LiveServer = await make_server(
        model=HANGS, database_url=await postgres.create_database()
    )
    started = await server.client.post("/api/runs", json=body("Think forever"))
    run_id = started.json()["runId"]
    async with following(server.client, "GET", f"/api/runs/{run_id}/events") as run:
        await run.wait_for(lambda events: messages(events) >= 1, 120)
        await postgres.stop()
        # What needs the database says so, as JSON.
        listed = await asyncio.wait_for(server.client.get("/api/projects"), 30)
        assert listed.status_code == 503, listed.text
        assert listed.json()["error"]["code"] == "store_unavailable"

        cancelled = await asyncio.wait_for(server.client.post(f"/api/runs/{run_id}/cancel"), 30)
        assert cancelled.status_code == 200, cancelled.text
        assert cancelled.json()["state"] == "cancelled"
        events = await run.end(30)
        # Replaying a live run needs no database either.
        async with following(server.client, "GET", f"/api/runs/{run_id}/events") as replay:
            assert await replay.end(30) == events
    final = events[-1][1]
    assert final.type == "error" and final.data.code == "cancelled"

    await postgres.start()
    await assert_caught_up(server, run_id, "cancelled", events)


async def test_sigterm_stops_the_server_while_postgres_is_down(
    postgres: PrivatePostgres, make_server: Any, tmp_path: Path
) -> None:
    """`sandforge serve` as run in production, a follower connected, the database away."""
    url = await postgres.create_database()
    port = free_port()
    env = {
        **os.environ,
        "SANDFORGE_DATA_DIR": str(tmp_path / "served"),
        "SANDFORGE_DATABASE_URL": url,
        "SANDFORGE_MODEL": HANGS,
        "SANDFORGE_RENDER_CHECK": "false",
    }
    serving = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "from sandforge.cli import app; app()", "serve", "--port", str(port),
        env=env,
    )  # fmt: skip
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            await eventually(lambda: _answers(client), 120)
            run_id = (await client.post("/api/runs", json=body("Think forever"))).json()["runId"]
            async with following(client, "GET", f"/api/runs/{run_id}/events") as run:
                await run.wait_for(lambda events: messages(events) >= 1, 120)
                await postgres.stop()
                serving.send_signal(signal.SIGTERM)
                # uvicorn re-raises the signal once it has shut down gracefully.
                assert await asyncio.wait_for(serving.wait(), 60) in (0, -signal.SIGTERM)
                events = await run.end(30)
    finally:
        if serving.returncode is None:
            serving.kill()
            await serving.wait()

    # The next server finds the run interrupted, with what was stored kept, once and in order.
    await postgres.start()
    restarted: LiveServer = await make_server(database_url=url)
    record = await restarted.services.store.get_run(run_id)
    assert record.state == "interrupted"
    stored = await restarted.services.store.events_after(run_id, 0)
    assert [seq for seq, _ in stored] == list(range(1, len(stored) + 1))
    streamed = {seq: to_json(event) for seq, event in events}
    assert all(streamed[seq] == text for seq, text in stored[:-1] if seq in streamed)
    assert json.loads(stored[-1][1])["data"]["code"] == "interrupted"


async def _answers(client: httpx.AsyncClient) -> bool:
    try:
        return (await client.get("/api/health")).status_code == 200
    except httpx.TransportError:
        return False


# -- SQLite on a full disk ----------------------------------------------------------------------


@pytest.fixture
def disk() -> Iterator[SmallDisk]:
    with small_disk() as mounted:
        yield mounted


async def test_sqlite_on_a_full_disk_answers_507_and_runs_still_end(
    disk: SmallDisk, make_server: Any, tmp_path: Path
) -> None:
    url = f"sqlite+aiosqlite:///{disk.path / 'sandforge.db'}"
    server: LiveServer = await make_server(model=PACED, database_url=url, allowed_models=[HANGS])

    await asyncio.to_thread(disk.fill)
    refused = await server.client.post("/api/runs", json=body("Anything"))
    assert refused.status_code == 507, refused.text
    assert refused.json()["error"]["code"] == "insufficient_storage"
    await asyncio.to_thread(disk.free)

    release = tmp_path / "release"
    paced = body(f"Build a paced page release:{release}")
    hanging = (await server.client.post("/api/runs", json={**body("Wait"), "model": HANGS})).json()
    async with (
        following(server.client, "POST", "/api/agent/stream-daytona", paced) as run,
        following(server.client, "GET", f"/api/runs/{hanging['runId']}/events") as other,
    ):
        run_id = run.headers["x-sandforge-run-id"]
        await run.wait_for(lambda events: messages(events) >= 5, 120)
        await other.wait_for(lambda events: messages(events) >= 1, 120)
        await asyncio.to_thread(disk.fill)

        # The stream flows, a cancel answers, reads work and new writes answer 507.
        seen = len(run.events)
        await run.wait_for(lambda events: len(events) >= seen + 10, 60)
        cancel = server.client.post(f"/api/runs/{hanging['runId']}/cancel")
        cancelled = await asyncio.wait_for(cancel, 30)
        assert cancelled.status_code == 200 and cancelled.json()["state"] == "cancelled"
        assert (await server.client.get(f"/api/runs/{run_id}")).status_code == 200
        another = await server.client.post("/api/runs", json=body("Anything"))
        assert another.status_code == 507, another.text

        release.touch()  # the paced run ends (saving its version) on the full disk
        await run.wait_for(has_progress("complete"), 120)
        await asyncio.to_thread(disk.free)
        events = await run.end(120)
        other_events = await other.end(30)

    final = events[-1][1]
    assert isinstance(final, CompleteEvent), final
    await assert_caught_up(server, run_id, "succeeded", events)
    await assert_caught_up(server, hanging["runId"], "cancelled", other_events)
