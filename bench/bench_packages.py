"""Package installs inside a local sandbox without egress, through the package bridge.
Prints JSON.

    .venv/bin/python -m bench.bench_packages [--runs 3]

- cold: a fresh sandbox and an empty bridge cache, so every file comes from the registry
  (over this machine's network).
- warm: a fresh sandbox, the bridge's cache holding what the cold install fetched, so the
  registry is not asked for the package files (npm and pip still ask for metadata, which
  the bridge answers from its cache for ten minutes).
- react project: `npm install` of one more package into a React project, whose node_modules
  is the template cache with the sandbox's own overlay over it (warm bridge cache).

Each figure is the time of the install command alone, from `exec` to its exit, on the
server's defaults (a bwrap sandbox with its own disk image, the bridge in this process).
Not a test: nothing here asserts.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from sandforge.config import Settings
from sandforge.sandbox.base import SandboxSpec
from sandforge.sandbox.local import BwrapLauncher, LocalSandboxProvider
from sandforge.sandbox.local.registry import SOCKET_ROOT, Registries, RegistryBridge
from sandforge.templates import REACT
from sandforge.templates.cache import package_mounts

PIP = "pip install tomli-w==1.2.0"
NPM = "mkdir -p /tmp/app && cd /tmp/app && npm init -y >/dev/null && npm install is-number@7.0.0"
REACT_NPM = "npm install --no-audit --no-fund clsx@2.1.1"


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 1)


async def _timed(provider: LocalSandboxProvider, command: str, spec: SandboxSpec) -> float:
    sandbox = await provider.create(spec)
    try:
        if spec.package_mounts:
            for name in ("package.json", "package-lock.json"):
                await sandbox.write_file(name, REACT.files.joinpath(name).read_bytes())
        started = time.perf_counter()
        result = await sandbox.exec(command, timeout=300)
        elapsed = time.perf_counter() - started
        if result.exit_code != 0:
            raise SystemExit(f"`{command}` failed: {result.stderr[-2000:]}")
        return elapsed
    finally:
        await sandbox.delete()


def _cold_then_warm(command: str, spec: SandboxSpec) -> Any:
    async def run(provider: LocalSandboxProvider) -> tuple[float, float]:
        return await _timed(provider, command, spec), await _timed(provider, command, spec)

    return run


async def _with_bridge(tmp: Path, name: str, run: Any) -> Any:
    """`run(provider)` with a launcher whose bridge has a cache of its own, empty at first."""
    bridge = RegistryBridge(SOCKET_ROOT / f"bench-{name}.sock", tmp / name, Registries())
    launcher = BwrapLauncher(registry=bridge)
    provider = LocalSandboxProvider(tmp / f"sandboxes-{name}", launcher)
    try:
        return await run(provider)
    finally:
        await launcher.close()


async def bench(runs: int) -> dict[str, Any]:
    spec = SandboxSpec(packages=True)
    settings = Settings()
    react = SandboxSpec(
        packages=True,
        package_mounts=package_mounts(settings.template_cache, REACT, settings.rootfs.key),
    )
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="sandforge-bench-packages-") as directory:
        tmp = Path(directory)
        for label, command in (("pip", PIP), ("npm", NPM)):
            pairs = [
                await _with_bridge(tmp, f"{label}-{attempt}", _cold_then_warm(command, spec))
                for attempt in range(runs)
            ]
            cold, warm = [c for c, _ in pairs], [w for _, w in pairs]
            results[label] = {
                "cold_ms": _ms(statistics.median(cold)),
                "warm_ms": _ms(statistics.median(warm)),
                "warm_vs_cold": round(statistics.median(warm) / statistics.median(cold), 2),
                "n": runs,
            }

        async def react_installs(provider: LocalSandboxProvider) -> list[float]:
            await _timed(provider, REACT_NPM, react)  # fills the bridge's cache
            return [await _timed(provider, REACT_NPM, react) for _ in range(runs)]

        warm_react = await _with_bridge(tmp, "react", react_installs)
        results["npm_into_react_project"] = {
            "warm_ms": _ms(statistics.median(warm_react)),
            "n": runs,
        }
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(bench(args.runs)), indent=2))


if __name__ == "__main__":
    main()
