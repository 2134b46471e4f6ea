"""Local sandbox benchmark: creation, exec round trip and idle memory. Prints JSON.

    .venv/bin/python bench/bench_sandbox.py [--creations 50] [--execs 200]

- create: from `provider.create()` until the toolbox daemon has answered a ping,
  measured on the server side (BwrapLauncher; generation workers add one hop over the
  control socket). Each sandbox is deleted after its measurement, untimed.
- exec: the round trip of `exec("true")` on an idle sandbox.
- idle memory: private memory (Private_Clean + Private_Dirty from smaps_rollup) of
  the outer bwrap, bwrap's init and the toolbox daemon of an idle sandbox, plus their
  RSS and the cgroup's own figure (which also counts kernel memory and page cache).

Goals (docs/benchmarks.md): create p50 < 90 ms, exec p50 < 10 ms, idle < 25 MB.
Not a test: nothing here asserts.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from sandforge.sandbox.base import SandboxSpec
from sandforge.sandbox.local import BwrapLauncher, LocalSandboxProvider, check_isolation
from sandforge.sandbox.local.isolation import Mode


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 2)


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _summary(samples: list[float]) -> dict[str, float]:
    return {
        "p50_ms": _ms(statistics.median(samples)),
        "p95_ms": _ms(_percentile(samples, 0.95)),
        "min_ms": _ms(min(samples)),
        "max_ms": _ms(max(samples)),
        "n": len(samples),
    }


def _memory(pid: int) -> dict[str, int]:
    fields: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        key, _, value = line.partition(":")
        fields[key] = int(value.split()[0]) * 1024
    return {
        "private": fields.get("Private_Clean", 0) + fields.get("Private_Dirty", 0),
        "rss": fields.get("Rss", 0),
        "pss": fields.get("Pss", 0),
    }


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        found += [int(child) for child in text]
    return found


def _cgroup_usage(launcher: BwrapLauncher, sandbox_id: str) -> int | None:
    for directory in launcher.cgroup(sandbox_id).dirs:
        for name in ("memory.usage_in_bytes", "memory.current"):
            path = directory / name
            if path.exists():
                return int(path.read_text())
    return None


async def _create_until_answered(provider: LocalSandboxProvider, spec: SandboxSpec) -> float:
    started = time.perf_counter()
    sandbox = await provider.create(spec)
    await sandbox._toolbox.call("ping")
    elapsed = time.perf_counter() - started
    await sandbox.delete()
    return elapsed


async def run(creations: int, execs: int) -> dict[str, Any]:
    isolation = check_isolation()
    launcher = BwrapLauncher()
    if launcher.mode() is not Mode.FULL:
        raise SystemExit(f"full isolation is unavailable here: {isolation.problem}")
    with tempfile.TemporaryDirectory(prefix="sandforge-bench-") as tmp:
        provider = LocalSandboxProvider(Path(tmp) / "sandboxes", launcher)
        try:
            # One warm-up: the first create also makes the disk image template (mkfs).
            await _create_until_answered(provider, SandboxSpec())
            create = [
                await _create_until_answered(provider, SandboxSpec()) for _ in range(creations)
            ]
            egress: list[float] = []
            if not isolation.egress_problem:
                egress = [
                    await _create_until_answered(provider, SandboxSpec(network="egress"))
                    for _ in range(max(5, creations // 5))
                ]

            sandbox = await provider.create(SandboxSpec())
            for _ in range(10):
                await sandbox.exec("true")
            rounds = []
            for _ in range(execs):
                started = time.perf_counter()
                await sandbox.exec("true")
                rounds.append(time.perf_counter() - started)

            await asyncio.sleep(1.0)  # idle
            bwrap = launcher.host_pid(sandbox.id)
            assert bwrap is not None
            init = _children(bwrap)
            daemon = [child for pid in init for child in _children(pid)]
            processes = {"bwrap": [bwrap], "init": init, "daemon": daemon}
            memory = {
                name: {k: sum(_memory(p)[k] for p in pids) for k in ("private", "rss", "pss")}
                for name, pids in processes.items()
            }
            private_total = sum(m["private"] for m in memory.values())
            cgroup_usage = _cgroup_usage(launcher, sandbox.id)
            await sandbox.delete()
        finally:
            await launcher.close()

    return {
        "machine": {
            "kernel": platform.release(),
            "cpus": os.cpu_count(),
            "python": sys.version.split()[0],
        },
        "create_until_daemon_answers": {**_summary(create), "goal_p50_ms": 90},
        "create_with_egress": _summary(egress) if egress else None,
        "exec_round_trip": {**_summary(rounds), "goal_p50_ms": 10},
        "idle_memory": {
            "private_mb": round(private_total / 2**20, 2),
            "goal_private_mb": 25,
            "by_process_mb": {
                name: {k: round(v / 2**20, 2) for k, v in m.items()} for name, m in memory.items()
            },
            "cgroup_usage_mb": round(cgroup_usage / 2**20, 2) if cgroup_usage else None,
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--creations", type=int, default=50)
    parser.add_argument("--execs", type=int, default=200)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args.creations, args.execs)), indent=2))


if __name__ == "__main__":
    main()
