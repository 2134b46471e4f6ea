"""Runs per second with one, two and three replicas on this machine.

    .venv/bin/python -m bench.bench_replicas [--runs 60]

Each replica is a real server process (tests/replicas/conftest.py starts them) sharing a
fresh Postgres database and Redis. The zero-latency scripted model builds a page on the
persistent flow (no sandbox), so the figure is the orchestration's throughput: the queue,
the forked workers, storing and publishing events, and streaming them back. Runs are
posted round-robin across the replicas, enough at once to keep every slot busy, after a
warm-up that starts each replica's fork server.

The machine has few cores (os.cpu_count() is printed), shared by all replicas, Postgres
and Redis: more replicas cannot add CPU here. The scaling figure is the ratio of runs
per second to one replica's, taken in the same invocation; read it as "replicas add no
contention of their own", not as a prediction for machines of their own.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from .common import ROOT

WARM_UP_PER_REPLICA = 3


async def _run_to_end(client: httpx.AsyncClient, prompt: str) -> bool:
    body = {"messages": [{"role": "user", "content": prompt}]}
    last = ""
    async with client.stream("POST", "/api/agent/stream", json=body) as response:
        async for line in response.aiter_lines():
            if line.startswith("data:"):
                last = json.loads(line[5:])["type"]
    return last == "complete"


async def _burst(urls: list[str], runs: int, at_once: int) -> tuple[float, int]:
    """Seconds for `runs` runs posted round-robin, `at_once` in flight; how many completed."""
    clients = [httpx.AsyncClient(base_url=url, timeout=300) for url in urls]
    slots = asyncio.Semaphore(at_once)

    async def one(index: int) -> bool:
        async with slots:
            return await _run_to_end(clients[index % len(clients)], f"Bench run {index}")

    try:
        started = time.perf_counter()
        done = await asyncio.gather(*(one(i) for i in range(runs)))
        return time.perf_counter() - started, sum(done)
    finally:
        for client in clients:
            await client.aclose()


def _measure(replicas: int, runs: int) -> dict[str, Any]:
    from tests.dbs import _admin_execute
    from tests.replicas.conftest import RUNS_PER_REPLICA, Cluster

    database = "sandforge_bench_" + secrets.token_hex(4)
    asyncio.run(_admin_execute(f"CREATE DATABASE {database}"))
    root = Path(tempfile.mkdtemp(prefix="sandforge-bench-replicas-"))
    cluster = Cluster(database, f"sandforge-bench-{secrets.token_hex(4)}", root)
    try:
        names = [chr(ord("a") + i) for i in range(replicas)]
        cluster.wait_healthy(cluster.launch(names[0]))
        for started in [cluster.launch(name) for name in names[1:]]:
            cluster.wait_healthy(started)
        urls = [cluster[name].url for name in names]
        at_once = replicas * RUNS_PER_REPLICA * 2
        asyncio.run(_burst(urls, WARM_UP_PER_REPLICA * replicas, at_once))
        seconds, completed = asyncio.run(_burst(urls, runs, at_once))
        return {
            "replicas": replicas,
            "runs": runs,
            "completed": completed,
            "seconds": round(seconds, 2),
            "runs_per_s": round(completed / seconds, 2),
        }
    finally:
        for replica in cluster.replicas.values():
            cluster.stop(replica)
        asyncio.run(_admin_execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)"))
        shutil.rmtree(root, ignore_errors=True)


def measure_all(runs: int) -> dict[str, Any]:
    """Runs per second with one, two and three replicas, and each as a ratio to one's."""
    sys.path.insert(0, str(ROOT))
    from tests.replicas.conftest import RUNS_PER_REPLICA

    figures = [_measure(n, runs) for n in (1, 2, 3)]
    single = figures[0]["runs_per_s"]
    return {
        "cores": os.cpu_count(),
        "max_concurrent_runs_per_replica": RUNS_PER_REPLICA,
        "figures": figures,
        "scaling_vs_one": {str(f["replicas"]): round(f["runs_per_s"] / single, 2) for f in figures},
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=60, help="runs per measurement")
    args = parser.parse_args()
    print(json.dumps(measure_all(args.runs), indent=2))


if __name__ == "__main__":
    main()
