"""What a sandbox used while a run held it: wall seconds, CPU seconds, memory GB-seconds.

Local sandboxes are measured: CPU time is their cgroup's counter, and memory is the
cgroup's current usage, sampled while the run goes on and integrated over time. Daytona
bills what it allocates (vCPUs and GiB, as it reports them), so a Daytona sandbox counts
its allocation times the wall time.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

SAMPLE_EVERY_S = 1.0
GB = 1 << 30


@dataclass(frozen=True)
class ResourceSample:
    """One reading: measured counters, or (for a provider that only reports what it
    allocates) the allocation."""

    cpu_seconds: float | None = None
    """CPU time used since the sandbox started (measured)."""
    memory_bytes: int | None = None
    """Memory in use now (measured)."""
    allocated_cpus: float | None = None
    allocated_memory_gb: float | None = None


@runtime_checkable
class MeteredSandbox(Protocol):
    async def resources(self) -> ResourceSample | None:
        """A reading now; None when this sandbox cannot be measured here."""


@dataclass(frozen=True)
class SandboxUsage:
    wall_seconds: float
    cpu_seconds: float
    memory_gb_seconds: float

    def to_json(self) -> dict[str, float]:
        return {
            "wallSeconds": round(self.wall_seconds, 3),
            "cpuSeconds": round(self.cpu_seconds, 3),
            "memoryGbSeconds": round(self.memory_gb_seconds, 3),
        }


class SandboxMeter:
    """Meters one sandbox from `start` to `stop`, sampling memory in the background."""

    def __init__(self, every_s: float = SAMPLE_EVERY_S) -> None:
        self.every_s = every_s
        self._sandbox: MeteredSandbox | None = None
        self._started = 0.0
        self._first: ResourceSample | None = None
        self._last_at = 0.0
        self._last_memory = 0
        self._memory_byte_seconds = 0.0
        self._sampler: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self._sampler is not None

    async def start(self, sandbox: object) -> None:
        if self.running:
            return
        self._started = self._last_at = time.monotonic()
        if isinstance(sandbox, MeteredSandbox):
            self._sandbox = sandbox
            self._first = await _read(sandbox)
            self._last_memory = (self._first.memory_bytes or 0) if self._first else 0
        self._sampler = asyncio.create_task(self._sample_memory())

    async def _sample_memory(self) -> None:
        while self._sandbox is not None:
            await asyncio.sleep(self.every_s)
            self._add(await _read(self._sandbox))

    def _add(self, sample: ResourceSample | None) -> None:
        """Integrate memory up to now (trapezoids between readings)."""
        now = time.monotonic()
        memory = sample.memory_bytes if sample and sample.memory_bytes is not None else None
        current = self._last_memory if memory is None else memory
        self._memory_byte_seconds += (self._last_memory + current) / 2 * (now - self._last_at)
        self._last_at, self._last_memory = now, current

    async def stop(self) -> SandboxUsage | None:
        """The usage from `start` to now; None if no sandbox was metered."""
        if self._sampler is None:
            return None
        self._sampler.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._sampler
        self._sampler = None
        wall = time.monotonic() - self._started
        last = await _read(self._sandbox) if self._sandbox is not None else None
        self._add(last)
        first, self._sandbox = self._first, None
        if first is not None and first.allocated_cpus is not None:
            return SandboxUsage(
                wall, first.allocated_cpus * wall, (first.allocated_memory_gb or 0) * wall
            )
        cpu = 0.0
        if first and last and first.cpu_seconds is not None and last.cpu_seconds is not None:
            cpu = max(last.cpu_seconds - first.cpu_seconds, 0.0)
        return SandboxUsage(wall, cpu, self._memory_byte_seconds / GB)


async def _read(sandbox: MeteredSandbox) -> ResourceSample | None:
    try:
        return await sandbox.resources()
    except Exception:
        # A reading is best effort: a sandbox stopping mid-run must not fail the run here.
        return None
