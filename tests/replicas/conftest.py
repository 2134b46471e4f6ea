"""Three sandforge replicas on one machine: subprocess servers on their own ports and data
dirs, sharing a fresh Postgres database and Redis (under a prefix of their own)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from tests.dbs import _admin_execute
from tests.e2e.conftest import SCRUBBED_ENV, bwrap_processes, free_port

REPO = Path(__file__).resolve().parents[2]
MODEL = "factory:tests.replicas.models:cluster"
REDIS_URL = "redis://127.0.0.1:6379/0"
STARTUP_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 60.0
RUNS_PER_REPLICA = 3


@dataclass
class ReplicaProcess:
    name: str
    port: int
    data_dir: Path
    process: subprocess.Popen[bytes]
    sandbox_ids: list[str] = field(default_factory=list)
    """Its sandboxes as last listed (a killed replica can no longer say)."""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self, timeout: float = 60) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=timeout)

    def list_sandboxes(self) -> list[str]:
        with contextlib.suppress(httpx.HTTPError), self.client() as client:
            listed = client.get("/api/sandboxes").json()["sandboxes"]
            self.sandbox_ids = sorted({*self.sandbox_ids, *(s["id"] for s in listed)})
        return self.sandbox_ids

    def kill(self) -> None:
        """kill -9, its sandboxes noted first (they die with it: --die-with-parent)."""
        self.list_sandboxes()
        self.process.kill()
        self.process.wait()

    def log_tail(self, lines: int = 80) -> str:
        text = (self.data_dir / "server.log").read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])


@dataclass
class Cluster:
    database: str
    prefix: str
    root: Path
    replicas: dict[str, ReplicaProcess] = field(default_factory=dict)

    @property
    def database_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:5432/{self.database}"

    def launch(self, name: str) -> ReplicaProcess:
        data_dir = self.root / name
        data_dir.mkdir(parents=True, exist_ok=True)
        port = free_port()
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in SCRUBBED_ENV and not k.startswith("SANDFORGE_")
        }
        env.update(
            PYTHONPATH=os.pathsep.join([str(REPO), str(REPO / "src")]),
            SANDFORGE_DATA_DIR=str(data_dir),
            SANDFORGE_PORT=str(port),
            SANDFORGE_DATABASE_URL=self.database_url,
            SANDFORGE_REDIS_URL=REDIS_URL,
            SANDFORGE_REDIS_PREFIX=self.prefix,
            SANDFORGE_REPLICA_ID=name,
            SANDFORGE_MODEL=MODEL,
            SANDFORGE_MAX_CONCURRENT_RUNS=str(RUNS_PER_REPLICA),
            SANDFORGE_RENDER_CHECK="false",
            SANDFORGE_REPAIR_ATTEMPTS="0",
        )
        code = (
            "from sandforge.config import Settings\n"
            "from sandforge.server.app import create_app\n"
            "from sandforge.server.runner import SandforgeServer\n"
            f"SandforgeServer(create_app(Settings()), '127.0.0.1', {port}).run()\n"
        )
        with (data_dir / "server.log").open("ab") as log:
            process = subprocess.Popen(
                [sys.executable, "-c", code],
                cwd=data_dir,  # no developer .env
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        replica = ReplicaProcess(name, port, data_dir, process)
        self.replicas[name] = replica
        return replica

    def wait_healthy(self, replica: ReplicaProcess) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while True:
            if replica.process.poll() is not None:
                raise RuntimeError(f"replica {replica.name} exited:\n{replica.log_tail()}")
            try:
                if httpx.get(f"{replica.url}/api/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"replica {replica.name} did not start:\n{replica.log_tail()}")
            time.sleep(0.1)

    def stop(self, replica: ReplicaProcess) -> None:
        if replica.process.poll() is None:
            replica.list_sandboxes()
            replica.process.send_signal(signal.SIGTERM)
            try:
                replica.process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                replica.process.kill()
                replica.process.wait()
        deadline = time.monotonic() + 15
        left = bwrap_processes(replica.data_dir, replica.sandbox_ids)
        while left and time.monotonic() < deadline:
            time.sleep(0.1)
            left = bwrap_processes(replica.data_dir, replica.sandbox_ids)
        assert not left, f"bwrap processes outlived replica {replica.name}: {left}"

    def __getitem__(self, name: str) -> ReplicaProcess:
        return self.replicas[name]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """Replicas a, b and c; a fresh database and Redis prefix for the module."""
    name = "sandforge_replicas_" + secrets.token_hex(4)
    try:
        redis.Redis.from_url(REDIS_URL).ping()
        asyncio.run(_admin_execute(f"CREATE DATABASE {name}"))
    except Exception as exc:
        pytest.skip(f"Postgres or Redis on 127.0.0.1 is unreachable ({exc})")
    cluster = Cluster(name, f"sandforge-test-{secrets.token_hex(4)}", tmp_path_factory.mktemp("c"))
    try:
        # The first runs the migrations alone; the others find the schema made.
        cluster.wait_healthy(cluster.launch("a"))
        for replica in [cluster.launch("b"), cluster.launch("c")]:
            cluster.wait_healthy(replica)
        yield cluster
    finally:
        for replica in cluster.replicas.values():
            cluster.stop(replica)
        asyncio.run(_admin_execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


def ask(prompt: str, **extra: Any) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": prompt}], **extra}


def sse_events(lines: Iterator[str]) -> Iterator[tuple[int, dict[str, Any]]]:
    """(seq, event) of an SSE stream's numbered frames."""
    seq = 0
    for line in lines:
        if line.startswith("id:"):
            seq = int(line[3:])
        elif line.startswith("data:"):
            yield seq, json.loads(line[5:])
