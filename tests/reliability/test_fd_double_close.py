"""No file descriptor is closed twice by the server (issue 14, item 10).

A DELETE once answered 500 with `OSError: [Errno 9]` inside `shutil.rmtree`: something
on the event loop closed an fd number it had already closed, which a worker thread had
just reopened (rmtree's directory fd). In production the loop is uvloop, and uvloop,
given a pipe as a file object, closes the fd itself and then closes the file object
over it again; between the two, another thread may have been handed that number.

A correct program never closes an fd that is not open, so the test runs `sandforge
serve` exactly as in production (uvicorn picks uvloop) under strace and fails on any
close() of the loop's thread that answers EBADF: each is a double close, whether or not
another thread was unlucky enough to be hit by it this time.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import free_socket

from .conftest import eventually

STRACE = shutil.which("strace")


def _can_trace() -> bool:
    if STRACE is None:
        return False
    probe = subprocess.run([STRACE, "-qq", "-o", os.devnull, "true"], capture_output=True)
    return probe.returncode == 0


pytestmark = pytest.mark.skipif(not _can_trace(), reason="needs strace, allowed to trace")


async def serve_traced(tmp_path: Path, runs: list[tuple[str, Any]]) -> list[str]:
    """Serve under strace, make `runs` (path, body) at once, delete their projects, stop;
    the close() calls of the loop's thread that failed with EBADF."""
    with free_socket() as sock:
        port = sock.getsockname()[1]
    trace = tmp_path / "close.trace"
    env = {
        **os.environ,
        "SANDFORGE_DATA_DIR": str(tmp_path / "data"),
        "SANDFORGE_RENDER_CHECK": "false",
    }
    # Without -f strace follows only the main thread: the event loop's, where transports
    # are closed. Workers, sandboxes and worker threads run untraced.
    serving = await asyncio.create_subprocess_exec(
        str(STRACE), "-qq", "-e", "trace=close", "-e", "status=failed", "-o", str(trace),
        sys.executable, "-c", "from sandforge.cli import app; app()", "serve",
        "--port", str(port),
        env=env,
    )  # fmt: skip
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=120) as client:
            await eventually(lambda: _answers(client), 120)
            projects = await asyncio.gather(*(_run(client, path, body) for path, body in runs))
            for project_id in projects:
                deleted = await client.delete(f"/api/projects/{project_id}")
                assert deleted.status_code == 204, deleted.text
        # strace keeps signals to itself: the server is its child.
        os.kill(await asyncio.to_thread(_traced_pid, serving.pid), signal.SIGTERM)
        await asyncio.wait_for(serving.wait(), 60)
    finally:
        if serving.returncode is None:
            with contextlib.suppress(OSError, ValueError):
                os.kill(_traced_pid(serving.pid), signal.SIGKILL)
            await serving.wait()
    lines = (await asyncio.to_thread(trace.read_text)).splitlines()
    return [line for line in lines if "EBADF" in line]


def _traced_pid(strace_pid: int) -> int:
    return int(Path(f"/proc/{strace_pid}/task/{strace_pid}/children").read_text().split()[0])


async def _run(client: httpx.AsyncClient, path: str, body: Any) -> str:
    async with client.stream("POST", path, json=body) as response:
        assert response.status_code == 200
        lines = [line async for line in response.aiter_lines()]
    assert any('"type":"complete"' in line for line in lines), lines[-3:]
    return response.headers["x-sandforge-project-id"]


async def _answers(client: httpx.AsyncClient) -> bool:
    try:
        return (await client.get("/api/health")).status_code == 200
    except httpx.TransportError:
        return False


def prompt(text: str) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": text}]}


async def test_runs_and_deletes_close_no_fd_twice(tmp_path: Path) -> None:
    """The persistent flow: worker processes and their event streams, and no sandbox."""
    runs = [("/api/agent/stream", prompt(f"Make clock number {i}")) for i in range(4)]
    assert await serve_traced(tmp_path, runs) == []


async def test_sandbox_runs_and_deletes_close_no_fd_twice(tmp_path: Path) -> None:
    """The sandbox flow: each run also launches a sandbox, and each delete removes one."""
    runs = [("/api/agent/stream-daytona", prompt(f"Make timer number {i}")) for i in range(2)]
    assert await serve_traced(tmp_path, runs) == []
