"""The warm worker pool: forked per run, isolated crashes, a bounded queue, recycling."""

from __future__ import annotations

import os
import signal
from typing import Any

from sandforge.runs.supervisor import LiveRun
from tests.conftest import LiveServer

HANGS = "factory:tests.scripted.scripted_models:hangs"


def ask(prompt: str) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": prompt}]}


def parent_of(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])


async def start(server: LiveServer, prompt: str) -> LiveRun:
    run_id = (await server.client.post("/api/runs", json=ask(prompt))).json()["runId"]
    return server.services.supervisor.runs[run_id]


async def until_message(run: LiveRun) -> None:
    async for _, event in run.log.follow():
        if event.type == "message":
            return
    raise AssertionError(f"run ended early: {run.log.events[-1]}")


async def test_a_crashing_worker_kills_only_its_own_run(make_server: Any) -> None:
    server: LiveServer = await make_server(model=HANGS)
    doomed, survivor = await start(server, "Build a timer"), await start(server, "Build a clock")
    await until_message(doomed)
    await until_message(survivor)
    assert doomed.process is not None and survivor.process is not None
    # Both are children of the same warm fork server, not of the API server.
    assert parent_of(doomed.process.pid) == parent_of(survivor.process.pid) != os.getpid()
    os.kill(doomed.process.pid, signal.SIGKILL)
    assert [e async for _, e in doomed.log.follow()][-1].data.message == (
        "Generation process exited with code -9"
    )
    assert not survivor.done
    os.kill(survivor.process.pid, 0)  # still alive
    await server.client.post(f"/api/runs/{survivor.id}/cancel")
    assert survivor.state == "cancelled"


async def test_runs_beyond_the_limit_queue_and_say_so(make_server: Any) -> None:
    server: LiveServer = await make_server(max_concurrent_runs=1)
    first, second = await start(server, "Build a timer"), await start(server, "Build a clock")
    first_events = [e async for _, e in first.log.follow()]
    second_events = [e async for _, e in second.log.follow()]
    assert first_events[-1].type == "complete" and second_events[-1].type == "complete"
    queued = next(e.data.message for e in second_events if e.type == "progress")
    assert queued.startswith("Queued: 1 runs are in progress")


async def test_a_queued_run_can_be_cancelled_before_it_starts(make_server: Any) -> None:
    server: LiveServer = await make_server(model=HANGS, max_concurrent_runs=1)
    busy = await start(server, "Build a timer")
    await until_message(busy)
    waiting = await start(server, "Build a clock")
    response = await server.client.post(f"/api/runs/{waiting.id}/cancel")
    assert response.json()["state"] == "cancelled"
    assert waiting.process is None  # it never started
    await server.client.post(f"/api/runs/{busy.id}/cancel")


async def test_the_fork_server_is_recycled(make_server: Any) -> None:
    server: LiveServer = await make_server(model=HANGS, worker_recycle_after=1)
    parents = []
    for prompt in ("Build a timer", "Build a clock"):
        run = await start(server, prompt)
        await until_message(run)
        assert run.process is not None
        parents.append(parent_of(run.process.pid))
        await server.client.post(f"/api/runs/{run.id}/cancel")
        assert run.state == "cancelled"
    assert parents[0] != parents[1]
