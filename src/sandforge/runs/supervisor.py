"""Runs generations in child processes, numbers their events and fans them out.

A run outlives any client: subscribers come and go, replaying from any seq.
Only `cancel` stops a run. A child that dies without a final event becomes the
seed's "Generation process exited with code N"; a failed run's sandbox is
deleted (found by its run label, so a sandbox the child created but never
reported is not leaked) unless keep-on-error is set.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Literal

from pydantic import ValidationError

from ..config import Settings
from ..events import Event, ProgressEvent, error, from_json, is_terminal
from ..sandbox import SandboxError, SandboxProvider
from .request import GenerationRequest
from .worker import settings_to_json

log = logging.getLogger(__name__)

CANCEL_GRACE_S = 5.0
MAX_EVENT_LINE = 16 << 20

RunState = Literal["running", "succeeded", "failed", "cancelled"]


@dataclass
class Run:
    id: str
    request: GenerationRequest
    provider: SandboxProvider
    created_at: float = field(default_factory=time.time)
    events: list[Event] = field(default_factory=list)
    state: RunState = "running"
    sandbox_id: str | None = None
    process: asyncio.subprocess.Process | None = None
    cancel_requested: bool = False
    _changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    @property
    def done(self) -> bool:
        return self.state != "running"

    async def publish(self, event: Event) -> None:
        async with self._changed:
            if isinstance(event, ProgressEvent) and event.data.sandboxId:
                self.sandbox_id = event.data.sandboxId
            self.events.append(event)
            if is_terminal(event):
                if event.type == "complete":
                    self.state = "succeeded"
                else:
                    self.state = "cancelled" if self.cancel_requested else "failed"
            self._changed.notify_all()

    def _has_news(self, seen: int) -> Callable[[], bool]:
        return lambda: seen < len(self.events) or self.done

    async def follow(self, after: int = 0) -> AsyncIterator[tuple[int, Event]]:
        """Events numbered from 1, starting after seq `after`, until the run ends."""
        seq = max(after, 0)
        while True:
            while seq < len(self.events):
                seq += 1
                yield seq, self.events[seq - 1]
            if self.done:
                return
            async with self._changed:
                await self._changed.wait_for(self._has_news(seq))


class RunNotFound(Exception):
    code = "run_not_found"


class Supervisor:
    def __init__(self, settings: Settings, isolated: bool = True) -> None:
        self.settings = settings
        self.isolated = isolated
        self.runs: dict[str, Run] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def get(self, run_id: str) -> Run:
        try:
            return self.runs[run_id]
        except KeyError:
            raise RunNotFound(f"no run {run_id!r}") from None

    async def start(self, request: GenerationRequest, provider: SandboxProvider) -> Run:
        run = Run(id="run" + secrets.token_hex(8), request=request, provider=provider)
        self.runs[run.id] = run
        task = asyncio.create_task(self._execute(run), name=f"run {run.id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return run

    async def cancel(self, run_id: str) -> Run:
        run = self.get(run_id)
        if run.done or run.process is None:
            return run
        run.cancel_requested = True
        with contextlib.suppress(ProcessLookupError):
            run.process.send_signal(signal.SIGTERM)
        return run

    async def close(self) -> None:
        for run in list(self.runs.values()):
            if not run.done:
                await self.cancel(run.id)
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=CANCEL_GRACE_S * 2)

    def _job(self, run: Run) -> bytes:
        return json.dumps(
            {
                "run_id": run.id,
                "request": run.request.model_dump(),
                "settings": settings_to_json(self.settings),
                "isolated": self.isolated,
            }
        ).encode()

    async def _execute(self, run: Run) -> None:
        terminal: Event | None = None
        code: int | None = None
        try:
            read_fd, write_fd = os.pipe()
            try:
                run.process = await asyncio.create_subprocess_exec(
                    sys.executable,
                    "-m",
                    "sandforge.runs.worker",
                    "--events-fd",
                    str(write_fd),
                    stdin=asyncio.subprocess.PIPE,
                    pass_fds=(write_fd,),
                )
            finally:
                os.close(write_fd)
            assert run.process.stdin is not None
            run.process.stdin.write(self._job(run))
            await run.process.stdin.drain()
            run.process.stdin.close()
            async for event in _read_events(read_fd):
                if is_terminal(event):
                    terminal = event
                else:
                    await run.publish(event)
            code = await self._wait(run)
        except Exception as exc:
            log.exception("run %s failed in the supervisor", run.id)
            terminal = error(f"The supervisor lost the run: {exc}", code="internal")
        if terminal is None:
            terminal = error(
                f"Generation process exited with code {code}",
                code="cancelled" if run.cancel_requested else "worker_exited",
            )
        if terminal.type == "error" and not self.settings.keep_on_error:
            await self._delete_sandboxes(run)
        await run.publish(terminal)

    async def _wait(self, run: Run) -> int:
        assert run.process is not None
        try:
            return await asyncio.wait_for(run.process.wait(), CANCEL_GRACE_S)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                run.process.kill()
            return await run.process.wait()

    async def _delete_sandboxes(self, run: Run) -> None:
        try:
            for info in await run.provider.list({"run": run.id}):
                sandbox = await run.provider.get(info.id)
                await sandbox.delete()
        except SandboxError:
            log.exception("could not delete the sandbox of failed run %s", run.id)


async def _read_events(fd: int) -> AsyncIterator[Event]:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=MAX_EVENT_LINE)
    transport, _ = await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(fd, "rb", buffering=0)
    )
    try:
        while line := await reader.readline():
            try:
                yield from_json(line)
            except ValidationError as exc:
                log.error("worker sent an invalid event: %s", exc)
    finally:
        transport.close()
