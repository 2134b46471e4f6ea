"""Runs generations in child processes, numbers, stores and fans out their events.

A run outlives any client: subscribers come and go, replaying from any seq.
Only `cancel` stops a run. A child that dies without a final event becomes the
seed's "Generation process exited with code N"; a failed run's sandbox is
deleted (found by its run label, so a sandbox the child created but never
reported is not leaked) unless keep-on-error is set. A finished turn becomes a
project version: a git commit in the sandbox, mirrored in the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import ValidationError

from ..agent.offline import derive_title
from ..config import Settings
from ..events import (
    CompleteEvent,
    Event,
    ProgressEvent,
    error,
    from_json,
    is_terminal,
    progress,
    to_json,
)
from ..sandbox import Sandbox, SandboxError, SandboxNotFound, SandboxProvider
from ..store.errors import RunNotFound
from ..store.records import ProjectRecord
from ..store.repo import Store
from .forkserver import ForkServer, WorkerHandle
from .job import Flow, RunJob
from .request import ChatMessageIn, GenerationRequest
from .worker import settings_to_json

log = logging.getLogger(__name__)

CANCEL_GRACE_S = 5.0
FINISHED_RUN_MEMORY_S = 300.0
MAX_EVENT_LINE = 16 << 20
MAX_SNAPSHOT_FILES = 2000
COMMIT_SCRIPT = (
    "git init -q 2>/dev/null; "
    "printf 'node_modules/\\n' > .git/info/exclude && "
    "git add -A && "
    "git -c user.name=sandforge -c user.email=sandforge@localhost "
    'commit -q --allow-empty -m "$SANDFORGE_COMMIT_MESSAGE" && git rev-parse HEAD'
)

INTERRUPTED = (
    "The server stopped while this run was in flight. Everything it stored up to then is kept; "
    "send the prompt again to continue."
)

RunState = Literal["running", "succeeded", "failed", "cancelled", "interrupted"]


@dataclass
class Run:
    id: str
    job: RunJob
    provider: SandboxProvider
    created_at: float = field(default_factory=time.time)
    events: list[Event] = field(default_factory=list)
    state: RunState = "running"
    sandbox_id: str | None = None
    process: WorkerHandle | None = None
    cancel_requested: bool = False
    interrupted: bool = False
    cancelled: asyncio.Event = field(default_factory=asyncio.Event)
    _changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    @property
    def request(self) -> GenerationRequest:
        return self.job.request

    @property
    def done(self) -> bool:
        return self.state != "running"

    async def publish(self, event: Event) -> int:
        async with self._changed:
            if isinstance(event, ProgressEvent) and event.data.sandboxId:
                self.sandbox_id = event.data.sandboxId
            self.events.append(event)
            if is_terminal(event):
                self.state = self.final_state(event)
            self._changed.notify_all()
            return len(self.events)

    def final_state(self, terminal: Event) -> RunState:
        if terminal.type == "complete":
            return "succeeded"
        if self.interrupted:
            return "interrupted"
        return "cancelled" if self.cancel_requested else "failed"

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

    def assistant_text(self) -> str:
        return "".join(e.data.content for e in self.events if e.type == "message")


class Supervisor:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        isolated: bool = True,
        isolation_problem: str = "",
        on_sandbox_used: Callable[[str], None] | None = None,
    ) -> None:
        self.on_sandbox_used = on_sandbox_used
        """Told when a run ends, so an idle timer starts from then."""
        self.settings = settings
        self.store = store
        self.isolated = isolated
        self.isolation_problem = isolation_problem
        self.forkserver = ForkServer(recycle_after=settings.worker_recycle_after)
        self._slots = asyncio.Semaphore(settings.max_concurrent_runs)
        self._queued = 0
        self.runs: dict[str, Run] = {}
        self.renders: dict[str, dict[str, Any]] = {}
        """The last rendered check per sandbox (or persistent project)."""
        self._project_listeners: dict[str, set[asyncio.Queue[Event]]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def warm_up(self) -> None:
        """Start the fork server in the background, so the first run need not wait for it."""
        task = asyncio.create_task(self.forkserver.start(), name="fork server warm-up")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- starting ---------------------------------------------------------------------------------

    async def start(
        self,
        request: GenerationRequest,
        provider: SandboxProvider,
        flow: Flow,
        project: ProjectRecord | None = None,
    ) -> Run:
        """Plan the run (project, history, sandbox or rebuild) and start its worker."""
        run_id = "run" + secrets.token_hex(8)
        if project is None:
            project = await self.store.create_project(
                name=request.projectName or derive_title(request.prompt),
                project_type=request.projectType,
                flow=flow,
                agents=request.agents,
                provider=provider.name,
            )
            history = request.history
        else:
            history = [
                ChatMessageIn(role=m.role, content=m.content)
                for m in await self.store.history(project.id)
            ]
        sandbox_id, seed = await self._plan_sandbox(project, provider)
        job = RunJob(
            run_id=run_id,
            request=request,
            project_id=project.id,
            flow="persistent" if project.flow == "persistent" else "sandbox",
            provider=provider.name,
            preview_token=project.preview_token,
            public=project.public,
            history=history,
            sandbox_id=sandbox_id,
            seed_files_b64=RunJob.encode_files(seed) if seed is not None else None,
            isolated=self.isolated,
            isolation_problem=self.isolation_problem,
        )
        await self.store.create_run(run_id, project.id, request.model_dump())
        await self.store.add_message(project.id, run_id, "user", request.prompt)
        run = Run(id=run_id, job=job, provider=provider)
        self.runs[run.id] = run
        task = asyncio.create_task(self._execute(run), name=f"run {run.id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return run

    async def _plan_sandbox(
        self, project: ProjectRecord, provider: SandboxProvider
    ) -> tuple[str | None, dict[str, bytes] | None]:
        """Continue in the project's sandbox, rebuild it from stored files, or start fresh."""
        if project.flow == "persistent":
            return None, None
        if project.sandbox_id:
            try:
                await provider.get(project.sandbox_id)
                return project.sandbox_id, None
            except SandboxNotFound:
                pass
        files = await self.store.files(project.id)
        return None, files if files else None

    # -- following --------------------------------------------------------------------------------

    def live(self, run_id: str) -> Run | None:
        return self.runs.get(run_id)

    async def events(self, run_id: str, after: int = 0) -> AsyncIterator[tuple[int, Event]]:
        """A live run's events as they come, or a finished run's from the store."""
        run = self.runs.get(run_id)
        if run is not None:
            async for item in run.follow(after):
                yield item
            return
        await self.store.get_run(run_id)
        for seq, body in await self.store.events_after(run_id, after):
            yield seq, from_json(body)

    def listen(self, project_id: str) -> asyncio.Queue[Event]:
        """A queue that receives every event of the project's runs from now on."""
        queue: asyncio.Queue[Event] = asyncio.Queue()
        self._project_listeners.setdefault(project_id, set()).add(queue)
        return queue

    def unlisten(self, project_id: str, queue: asyncio.Queue[Event]) -> None:
        self._project_listeners.get(project_id, set()).discard(queue)

    def notify_project(self, project_id: str, event: Event) -> None:
        for queue in self._project_listeners.get(project_id, ()):
            queue.put_nowait(event)

    # -- cancelling and closing -------------------------------------------------------------------

    async def cancel(self, run_id: str) -> Run:
        run = self.runs.get(run_id)
        if run is None:
            raise RunNotFound(f"no running run {run_id!r}")
        if run.done:
            return run
        run.cancel_requested = True
        run.cancelled.set()
        if run.process is not None:
            with contextlib.suppress(ProcessLookupError):
                run.process.send_signal(signal.SIGTERM)
        return run

    async def close(self) -> None:
        """Stop every live run; each ends `interrupted`, keeping what it stored."""
        for run in list(self.runs.values()):
            if not run.done:
                run.interrupted = True
                await self.cancel(run.id)
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=CANCEL_GRACE_S * 2)
        await self.forkserver.close()

    async def interrupt_orphans(self) -> list[str]:
        """Runs the store says are running but no process of ours runs: the server restarted."""
        interrupted = []
        for record in await self.store.running_runs():
            if record.id in self.runs:
                continue
            event = error(INTERRUPTED, code="interrupted")
            await self.store.append_event(record.id, record.events + 1, to_json(event))
            await self.store.finish_run(
                record.id, "interrupted", tokens_used=0, sandbox_id=record.sandbox_id
            )
            interrupted.append(record.id)
        return interrupted

    # -- executing ---------------------------------------------------------------------------------

    async def _publish(self, run: Run, event: Event) -> None:
        first_sandbox = run.sandbox_id is None
        seq = len(run.events) + 1
        await self.store.append_event(run.id, seq, to_json(event))
        await run.publish(event)
        if first_sandbox and run.sandbox_id and run.job.flow == "sandbox":
            await self.store.set_project_sandbox(run.job.project_id, run.sandbox_id)
            await self.store.record_sandbox(
                run.sandbox_id, run.provider.name, run.job.project_id, "started"
            )
        self.notify_project(run.job.project_id, event)

    def _worker_input(self, run: Run) -> bytes:
        return json.dumps(
            {"job": run.job.model_dump(mode="json"), "settings": settings_to_json(self.settings)}
        ).encode()

    async def _execute(self, run: Run) -> None:
        if self._slots.locked():
            self._queued += 1
            await self._publish(
                run,
                progress(
                    "creating",
                    f"Queued: {self.settings.max_concurrent_runs} runs are in progress "
                    f"and {self._queued - 1} wait ahead of this one",
                ),
            )
            try:
                got_slot = await _first(self._slots.acquire(), run.cancelled.wait())
            finally:
                self._queued -= 1
            if not got_slot:
                await self._end(run, error("The run was cancelled while queued.", code="cancelled"))
                return
        else:
            await self._slots.acquire()
        try:
            await self._execute_in_slot(run)
        finally:
            self._slots.release()

    async def _fork(self, run: Run) -> int:
        """Fork the run's worker; returns the read end of its event pipe."""
        job_read, job_write = os.pipe()
        events_read, events_write = os.pipe()
        try:
            run.process = await self.forkserver.fork(job_read, events_write)
            if run.cancel_requested:
                run.process.send_signal(signal.SIGTERM)
        except BaseException:
            for fd in (job_write, events_read):
                os.close(fd)
            raise
        finally:
            os.close(job_read)
            os.close(events_write)
        await asyncio.to_thread(_write_and_close, job_write, self._worker_input(run))
        return events_read

    async def _execute_in_slot(self, run: Run) -> None:
        terminal: Event | None = None
        code: int | None = None
        try:
            async for event in _read_events(await self._fork(run)):
                if is_terminal(event):
                    terminal = event
                else:
                    await self._publish(run, event)
            if run.process is not None:
                code = await self._wait(run)
        except Exception as exc:
            log.exception("run %s failed in the supervisor", run.id)
            terminal = error(f"The supervisor lost the run: {exc}", code="internal")
        if run.interrupted:
            terminal = error(INTERRUPTED, code="interrupted")
        if terminal is None:
            terminal = error(
                f"Generation process exited with code {code}",
                code="cancelled" if run.cancel_requested else "worker_exited",
            )
        tokens = 0
        if isinstance(terminal, CompleteEvent):
            tokens = terminal.data.tokensUsed
            if terminal.data.render is not None:
                self.renders[terminal.data.sandboxId or run.job.project_id] = terminal.data.render
            try:
                terminal.data.version = await self._save_turn(run)
            except (SandboxError, OSError) as exc:
                log.exception("run %s: saving the version failed", run.id)
                terminal = error(
                    f"The app was built but saving its files failed: {exc}", code="save_failed"
                )
        if terminal.type == "error" and not run.interrupted and not self.settings.keep_on_error:
            await self._delete_sandboxes(run)
        await self._end(run, terminal, tokens)

    async def _end(self, run: Run, terminal: Event, tokens: int = 0) -> None:
        # Stored (event and final state) before anyone in memory sees the end of the run.
        state = run.final_state(terminal)
        await self.store.append_event(run.id, len(run.events) + 1, to_json(terminal))
        await self.store.finish_run(run.id, state, tokens_used=tokens, sandbox_id=run.sandbox_id)
        await run.publish(terminal)
        self.notify_project(run.job.project_id, terminal)
        if run.sandbox_id and self.on_sandbox_used is not None:
            self.on_sandbox_used(run.sandbox_id)
        # Late subscribers are served from memory for a while, then from the store.
        asyncio.get_running_loop().call_later(FINISHED_RUN_MEMORY_S, self.runs.pop, run.id, None)

    async def _save_turn(self, run: Run) -> int:
        """Commit the turn in the sandbox and mirror its files as the project's next version."""
        job = run.job
        message = job.request.prompt.strip().splitlines()[0][:200]
        commit: str | None = None
        if job.flow == "persistent":
            files = await self.store.files(job.project_id)
        else:
            assert run.sandbox_id is not None
            sandbox = await run.provider.get(run.sandbox_id)
            commit = await git_commit(sandbox, message)
            files = await snapshot(sandbox)
        version = await self.store.save_version(
            job.project_id, files, message=message, run_id=run.id, commit=commit
        )
        await self.store.add_message(job.project_id, run.id, "assistant", run.assistant_text())
        return version.number

    async def _wait(self, run: Run) -> int:
        assert run.process is not None
        try:
            return await asyncio.wait_for(run.process.wait(), CANCEL_GRACE_S)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                run.process.kill()
            return await run.process.wait()

    async def _delete_sandboxes(self, run: Run) -> None:
        if run.job.flow == "persistent":
            return
        try:
            for info in await run.provider.list({"run": run.id}):
                sandbox = await run.provider.get(info.id)
                await sandbox.delete()
                await self.store.record_sandbox(
                    info.id, run.provider.name, run.job.project_id, "deleted"
                )
        except SandboxError:
            log.exception("could not delete the sandbox of failed run %s", run.id)


async def git_commit(sandbox: Sandbox, message: str) -> str | None:
    """A git commit of the project dir; None where git is unavailable in the sandbox."""
    result = await sandbox.exec(COMMIT_SCRIPT, env={"SANDFORGE_COMMIT_MESSAGE": message})
    sha = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""
    if result.exit_code != 0 or len(sha) != 40:
        log.warning("git commit failed in sandbox %s: %s", sandbox.id, result.stderr.strip())
        return None
    return sha


async def snapshot(sandbox: Sandbox) -> dict[str, bytes]:
    """The project's files (node_modules and .git excluded by the listing)."""
    entries = [e for e in await sandbox.list_files() if not e.is_dir][:MAX_SNAPSHOT_FILES]
    return {e.path: await sandbox.read_file(e.path) for e in entries}


def _write_and_close(fd: int, data: bytes) -> None:
    with os.fdopen(fd, "wb") as pipe:
        pipe.write(data)


async def _first(slot: Awaitable[object], cancelled: Awaitable[object]) -> bool:
    """Wait for a slot or a cancel; True if the slot was taken."""
    slot_task = asyncio.ensure_future(slot)
    cancel_task = asyncio.ensure_future(cancelled)
    await asyncio.wait((slot_task, cancel_task), return_when=asyncio.FIRST_COMPLETED)
    cancel_task.cancel()
    if not slot_task.done():
        slot_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await slot_task
    return not slot_task.cancelled()


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
