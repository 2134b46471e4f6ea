"""Stopping promptly: SIGTERM and Ctrl-C end `sandforge serve` within its grace, streams open."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from sandforge.sandbox.local import cgroups
from sandforge.store.repo import Store
from tests.conftest import LiveServer, free_socket

ROOT = Path(__file__).parent.parent
HANGS = "factory:tests.scripted.scripted_models:hangs"
GRACE_S = 2.0
HANG_GUARD_S = 60.0
"""Far past the promised grace + 2 s: only a shutdown that hangs fails on time."""


def bwrap_pids(sandbox_id: str) -> list[int]:
    """The bwrap processes of a sandbox (its id is in their mounts' paths)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if cmdline.split(b"\0")[0].endswith(b"bwrap") and sandbox_id.encode() in cmdline:
            found.append(int(entry.name))
    return found


async def sandbox_of(served: Served, run_id: str) -> str:
    """The run's sandbox, as its first progress event with one names it."""
    async with (
        httpx.AsyncClient(base_url=served.url, timeout=HANG_GUARD_S) as client,
        client.stream("GET", f"/api/runs/{run_id}/events") as response,
    ):
        async for line in response.aiter_lines():
            if line.startswith("data:"):
                sandbox_id = json.loads(line[5:])["data"].get("sandboxId")
                if sandbox_id:
                    assert bwrap_pids(sandbox_id), "the run's sandbox is not running"
                    return str(sandbox_id)
    raise AssertionError("the run named no sandbox")


class Served:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        with free_socket() as sock:
            self.port = sock.getsockname()[1]
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("SANDFORGE_")},
            "SANDFORGE_DATA_DIR": str(data_dir),
            "SANDFORGE_MODEL": HANGS,
            "SANDFORGE_SHUTDOWN_GRACE_S": str(GRACE_S),
            "SANDFORGE_RENDER_CHECK": "false",
            "PYTHONPATH": str(ROOT),
        }
        self.process = subprocess.Popen(
            [sys.executable, "-m", "sandforge.cli", "serve", "--port", str(self.port)],
            env=env,
            cwd=data_dir,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        self.url = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 60
        while True:
            assert self.process.poll() is None, self.process.stderr
            try:
                if httpx.get(f"{self.url}/api/health", timeout=1).is_success:
                    return
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.05)

    def start_run(self) -> dict[str, Any]:
        body = {"messages": [{"role": "user", "content": "Create a calculator"}]}
        started: dict[str, Any] = httpx.post(f"{self.url}/api/runs", json=body).json()
        return started

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    server = Served(tmp_path)
    yield server
    server.stop()


async def last_frame(url: str, until_message: asyncio.Event) -> dict[str, Any]:
    """Follow a stream to its end; the last frame's event (and whether it had an id)."""
    last: dict[str, Any] = {}
    async with (
        httpx.AsyncClient(timeout=HANG_GUARD_S) as client,
        client.stream("GET", url) as response,
    ):
        had_id = False
        async for line in response.aiter_lines():
            if line.startswith("id:"):
                had_id = True
            elif line.startswith("data:"):
                last = {"event": json.loads(line[5:]), "numbered": had_id}
                had_id = False
                if last["event"]["type"] == "message":
                    until_message.set()
    return last


async def test_sigterm_ends_streams_runs_and_sandboxes_within_the_grace(served: Served) -> None:
    started = served.start_run()
    run_id, project_id = started["runId"], started["projectId"]
    talking = asyncio.Event()
    streams = [
        asyncio.create_task(last_frame(f"{served.url}/api/runs/{run_id}/events", talking)),
        asyncio.create_task(last_frame(f"{served.url}/api/projects/{project_id}/events", talking)),
    ]
    await asyncio.wait_for(talking.wait(), HANG_GUARD_S)
    sandbox_id = await sandbox_of(served, run_id)
    sent = time.monotonic()
    served.process.send_signal(signal.SIGTERM)
    code = await asyncio.to_thread(served.process.wait, HANG_GUARD_S)
    took = time.monotonic() - sent
    # uvicorn re-raises the signal it stopped on once the shutdown is done.
    assert code == -signal.SIGTERM, served.process.stderr.read() if served.process.stderr else code

    for stream in await asyncio.gather(*streams):
        notice = stream["event"]
        assert notice["type"] == "error" and notice["data"]["code"] == "server_shutdown"
        assert not stream["numbered"], "the notice is not one of the run's events"
    run_notice = (await streams[0])["event"]["data"]
    assert run_notice["runId"] == run_id and run_id in run_notice["message"]

    store = await Store.open(None, served.data_dir, upgrade=False)
    try:
        assert (await store.get_run(run_id)).state == "interrupted", f"shutdown took {took:.1f}s"
        last = (await store.events_after(run_id, 0))[-1][1]
        assert json.loads(last)["data"]["code"] == "interrupted"
    finally:
        await store.close()
    assert bwrap_pids(sandbox_id) == []
    driver = cgroups.detect()
    if not isinstance(driver, str):
        assert not driver.get(sandbox_id).exists()


async def test_a_second_ctrl_c_exits_at_once_and_leaves_no_sandbox(served: Served) -> None:
    started = served.start_run()
    talking = asyncio.Event()
    stream = asyncio.create_task(
        last_frame(f"{served.url}/api/runs/{started['runId']}/events", talking)
    )
    await asyncio.wait_for(talking.wait(), HANG_GUARD_S)
    sandbox_id = await sandbox_of(served, started["runId"])
    served.process.send_signal(signal.SIGINT)
    await asyncio.sleep(0.2)
    served.process.send_signal(signal.SIGINT)
    code = await asyncio.to_thread(served.process.wait, HANG_GUARD_S)
    assert code == 130
    await asyncio.wait_for(stream, HANG_GUARD_S)  # the connection died with the server
    assert await asyncio.to_thread(gone_soon, sandbox_id)


def gone_soon(sandbox_id: str) -> bool:
    """Whether the sandbox's bwrap exits within a few seconds (it dies with the server)."""
    deadline = time.monotonic() + 10
    while bwrap_pids(sandbox_id):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


async def test_once_shutdown_begins_no_new_run_starts(server: LiveServer) -> None:
    server.services.begin_shutdown()
    body = {"messages": [{"role": "user", "content": "Create a calculator"}]}
    refused = await server.client.post("/api/runs", json=body)
    assert refused.status_code == 503
    assert refused.json()["error"]["code"] == "server_shutdown"
    assert "once it is back" in refused.json()["error"]["message"]
