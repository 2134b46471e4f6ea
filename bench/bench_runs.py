"""Run figures: first SSE event, orchestration overhead, a burst of 20, worker start and memory."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from sandforge.config import Settings
from sandforge.events import from_json
from sandforge.runs.forkserver import ForkServer
from sandforge.runs.job import RunJob
from sandforge.runs.request import GenerationRequest
from sandforge.runs.worker import settings_to_json
from sandforge.sandbox.local import BwrapLauncher, ControlServer, LocalSandboxProvider

from .common import BenchServer, ms, p50, p95, private_mb, server

TEN_FILES = "factory:bench.scripted:ten_files"
HANGS = "factory:bench.scripted:hangs"


def _body(prompt: str) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": prompt}]}


async def _stream_run(client: httpx.AsyncClient, prompt: str) -> tuple[float, dict[str, Any]]:
    """Seconds until the first SSE event, and the `complete` data."""
    start = time.perf_counter()
    first: float | None = None
    complete: dict[str, Any] = {}
    async with client.stream("POST", "/api/agent/stream-daytona", json=_body(prompt)) as response:
        async for line in response.aiter_lines():
            if not line.startswith("data:"):
                continue
            if first is None:
                first = time.perf_counter() - start
            event = json.loads(line[5:])
            if event["type"] == "error":
                raise RuntimeError(event["data"]["message"])
            if event["type"] == "complete":
                complete = event["data"]
    assert first is not None
    return first, complete


async def _until_preview(client: httpx.AsyncClient, srv: BenchServer, prompt: str) -> float:
    """Seconds from the POST until `complete` (after the rendered check) and the preview
    answering 200."""
    start = time.perf_counter()
    _, complete = await _stream_run(client, prompt)
    if complete.get("render") is None or complete["render"].get("unavailable"):
        raise RuntimeError(f"the rendered check did not run: {complete.get('render')}")
    if complete.get("repairs"):
        raise RuntimeError(f"the app needed repairs, so this is not a clean run: {complete}")
    headers = srv.preview_headers(complete["projectId"], complete.get("accessToken"))
    response = await client.get("/", headers=headers)
    if response.status_code != 200:
        raise RuntimeError(f"the preview answered {response.status_code} after complete")
    return time.perf_counter() - start


async def first_event_and_overhead(samples: int) -> dict[str, Any]:
    results: dict[str, Any] = {}
    with server() as srv:
        async with httpx.AsyncClient(base_url=srv.url, timeout=120) as client:
            await _stream_run(client, "warm up")
            firsts = [(await _stream_run(client, f"Build app {i}"))[0] for i in range(samples)]
    results["first_event_ms"] = {"p50": ms(p50(firsts)), "p95": ms(p95(firsts)), "n": samples}
    with server(model=TEN_FILES) as srv:
        async with httpx.AsyncClient(base_url=srv.url, timeout=120) as client:
            await _until_preview(client, srv, "warm up")
            overheads = [await _until_preview(client, srv, f"Build {i}") for i in range(samples)]
            burst_started = time.perf_counter()
            burst = await asyncio.gather(
                *(_until_preview(client, srv, f"Burst {i}") for i in range(20)),
                return_exceptions=True,
            )
            burst_wall = time.perf_counter() - burst_started
    ok = [b for b in burst if isinstance(b, float)]
    results["orchestration_ms"] = {
        "p50": ms(p50(overheads)),
        "p95": ms(p95(overheads)),
        "n": samples,
    }
    results["burst_20"] = {
        "succeeded": len(ok),
        "failed": [str(b) for b in burst if not isinstance(b, float)],
        "p50_ms": ms(p50(ok)) if ok else None,
        "p95_ms": ms(p95(ok)) if ok else None,
        "wall_ms": ms(burst_wall),
    }
    return results


async def _read_two_events(fd: int) -> tuple[float, float]:
    """Times at which the first event and the first assistant message arrived."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    transport, _ = await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(fd, "rb", buffering=0)
    )
    try:
        first = 0.0
        while line := await reader.readline():
            event = from_json(line)
            if not first:
                first = time.perf_counter()
            if event.type == "message":
                return first, time.perf_counter()
            if event.type == "error":
                raise RuntimeError(event.data.message)
        raise RuntimeError("the worker ended without a message")
    finally:
        transport.close()


def _job(settings: Settings, run_id: str) -> bytes:
    """A sandbox-flow job for the hanging model: it creates a sandbox, then streams and waits."""
    job = RunJob(
        run_id=run_id,
        request=GenerationRequest.model_validate(_body("Build a timer")),
        project_id="pjbench",
        project_type="web-app",
        flow="sandbox",
        provider="local",
        preview_token="t",
        history=[],
    )
    return json.dumps(
        {"job": job.model_dump(mode="json"), "settings": settings_to_json(settings)}
    ).encode()


async def worker_start(samples: int) -> dict[str, Any]:
    """Warm (forked) versus cold (fresh interpreter) workers, in the same run.

    Start time: from asking for a worker until its first event. Memory: the worker's
    private memory while the model streams, its sandbox created.
    """
    with tempfile.TemporaryDirectory(prefix="sandforge-bench-") as tmp:
        settings = Settings(data_dir=Path(tmp), model=HANGS, render_check=False)
        launcher = BwrapLauncher()
        control = ControlServer(launcher, settings.control_socket, settings.sandboxes_dir)
        await control.start()
        provider = LocalSandboxProvider(settings.sandboxes_dir, launcher)
        forkserver = ForkServer()
        await forkserver.start()
        warm_start: list[float] = []
        warm_mem: list[float] = []
        cold_start: list[float] = []
        cold_mem: list[float] = []
        try:
            # Sample 0 waits for the fork server's own start (its imports); it is dropped.
            for index in range(samples + 1):
                job_read, job_write = os.pipe()
                events_read, events_write = os.pipe()
                started = time.perf_counter()
                handle = await forkserver.fork(job_read, events_write)
                os.close(job_read)
                os.close(events_write)
                os.write(job_write, _job(settings, f"runwarm{index}"))
                os.close(job_write)
                first, _ = await _read_two_events(events_read)
                if index:
                    warm_start.append(first - started)
                    warm_mem.append(private_mb(handle.pid))
                handle.kill()
                await handle.wait()

                events_read, events_write = os.pipe()
                started = time.perf_counter()
                process = await asyncio.create_subprocess_exec(
                    sys.executable,
                    "-m",
                    "sandforge.runs.worker",
                    "--events-fd",
                    str(events_write),
                    stdin=asyncio.subprocess.PIPE,
                    pass_fds=(events_write,),
                )
                os.close(events_write)
                assert process.stdin is not None
                process.stdin.write(_job(settings, f"runcold{index}"))
                process.stdin.close()
                first, _ = await _read_two_events(events_read)
                if index:
                    cold_start.append(first - started)
                    cold_mem.append(private_mb(process.pid))
                process.send_signal(signal.SIGKILL)
                await process.wait()
                for info in await provider.list({"project": "pjbench"}):
                    await (await provider.get(info.id)).delete()
        finally:
            await forkserver.close()
            await control.close()
            await launcher.close()
    return {
        "warm_worker": {
            "start_ms_p50": ms(p50(warm_start)),
            "start_ms_p95": ms(p95(warm_start)),
            "private_mb_p50": p50(warm_mem),
            "n": samples,
        },
        "cold_worker": {
            "start_ms_p50": ms(p50(cold_start)),
            "start_ms_p95": ms(p95(cold_start)),
            "private_mb_p50": p50(cold_mem),
            "n": samples,
        },
        "cold_over_warm_start": round(p50(cold_start) / p50(warm_start), 1),
    }
