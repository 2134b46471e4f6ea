"""Shared bench helpers: a real server in a subprocess, medians and percentiles."""

from __future__ import annotations

import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).parent.parent


def p50(values: list[float]) -> float:
    return statistics.median(values)


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def ms(seconds: float) -> float:
    return round(seconds * 1000, 2)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class BenchServer:
    port: int
    data_dir: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def preview_headers(self, target_id: str, token: str | None) -> dict[str, str]:
        headers = {"host": f"3000-{target_id}.localhost:{self.port}"}
        if token:
            headers["x-sandforge-preview-token"] = token
        return headers


@contextmanager
def server(model: str | None = None, **env: str) -> Iterator[BenchServer]:
    """`sandforge serve` in a subprocess with its own data dir, on the server's defaults (the
    rendered check included) unless `env` says otherwise; stopped (SIGINT) afterwards."""
    with tempfile.TemporaryDirectory(prefix="sandforge-bench-") as tmp:
        port = free_port()
        environment = {
            k: v
            for k, v in os.environ.items()
            if k not in ("ANTHROPIC_API_KEY", "OPENAI_API_KEY", "SANDFORGE_MODEL")
        }
        environment.update(
            SANDFORGE_DATA_DIR=tmp,
            SANDFORGE_PORT=str(port),
            # Ours first, then the caller's (a checkout's src/ that is not the one installed).
            PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p),
            **env,
        )
        if model:
            environment["SANDFORGE_MODEL"] = model
        process = subprocess.Popen(
            [sys.executable, "-m", "sandforge.cli", "serve"],
            env=environment,
            stdout=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=1).is_success:
                        break
                except httpx.HTTPError:
                    if time.monotonic() > deadline or process.poll() is not None:
                        raise RuntimeError("the bench server did not start") from None
                    time.sleep(0.05)
            yield BenchServer(port, Path(tmp))
        finally:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()


def private_mb(pid: int) -> float:
    """Unique set size: memory only this process holds (Private_Clean + Private_Dirty)."""
    total_kb = 0
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            if line.startswith(("Private_Clean:", "Private_Dirty:")):
                total_kb += int(line.split()[1])
    return round(total_kb / 1024, 1)
