"""Runs generations in worker processes: their lifecycle, queue, numbering and storage.

A run outlives any client: followers come and go, replaying from any seq. Only a
cancel (or the server stopping) ends a run early. A worker that dies without a
final event becomes the seed's "Generation process exited with code N". A failed
run's sandbox is deleted (found by its run label, so a sandbox the worker created
but never reported is not leaked) unless keep-on-error is set. A finished turn
becomes the project's next version.

Every run ends, whatever fails: its terminal event reaches memory first, and the
store catches up through a retried, ordered writer (runs/storage.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import os
import signal
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

from pydantic import ValidationError

from ..config import Settings
from ..events import (
    CompleteEvent,
    ErrorEvent,
    Event,
    error,
    from_json,
    is_terminal,
    progress,
    to_json,
)
from ..projects.versions import commit_message, save_sandbox_version
from ..sandbox import SandboxProvider
from ..store.records import RunRecord, RunState, VersionRecord
from ..store.repo import Store
from ..store.retry import retrying
from ..store.usage import UsageLedger
from .budget import keeps_files
from .bus import EventBus
from .fanout import ProjectFeeds, RunLog
from .follow import follow_stored
from .forkserver import ForkServer, WorkerHandle
from .job import RunJob
from .spend import usage_record
from .storage import OrderedWriter
from .worker import settings_to_json

log = logging.getLogger(__name__)

CANCEL_GRACE_S = 5.0
"""How long a cancelled worker has to end its stream before it is killed."""
CANCEL_WAIT_S = CANCEL_GRACE_S + 5.0
"""How long a cancel request waits for the run to end before answering."""
FINISHED_RUN_MEMORY_S = 300.0
INTERRUPT_WAIT_S = 1.0
"""After the shutdown grace, how long interrupted runs have to say so before they are cut."""
END_STORE_WAIT_S = 3.0
"""How long a run's end waits for the store before followers see it anyway."""
SAVE_WITHIN_S = 60.0
"""How long saving a finished turn keeps retrying while the database is away."""
MAX_EVENT_LINE = 16 << 20

INTERRUPTED = (
    "The server stopped while this run was in flight. Everything it stored up to then is kept; "
    "send the prompt again to continue."
)


@dataclass
class LiveRun:
    """A run this server process is executing (or finished a short while ago)."""

    job: RunJob
    provider: SandboxProvider
    writer: OrderedWriter
    log: RunLog = field(default_factory=RunLog)
    state: RunState = "running"
    created_at: float = field(default_factory=time.time)
    process: WorkerHandle | None = None
    tokens_used: int = 0
    finished_at: float | None = None
    cancel_requested: bool = False
    interrupted: str | None = None
    """Why the server ended the run (it is stopping), if it did."""
    cancelled: asyncio.Event = field(default_factory=asyncio.Event)
    ending: Event | None = None
    """The terminal event, from when the run starts ending (before followers see it)."""

    @property
    def id(self) -> str:
        return self.job.run_id

    @property
    def done(self) -> bool:
        return self.state != "running"

    @property
    def sandbox_id(self) -> str | None:
        return self.log.sandbox_id

    def record(self) -> RunRecord:
        """The run as this process knows it: ahead of the store while the store catches up."""
        return RunRecord(
            id=self.id,
            project_id=self.job.project_id,
            state=self.state,
            request=self.job.request.model_dump(),
            sandbox_id=self.sandbox_id,
            tokens_used=self.tokens_used,
            created_at=self.created_at,
            finished_at=self.finished_at,
            events=len(self.log.events),
        )

    def final_state(self, terminal: Event) -> RunState:
        if terminal.type == "complete":
            return "succeeded"
        if self.interrupted:
            return "interrupted"
        return "cancelled" if self.cancel_requested else "failed"


class Supervisor:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        on_sandbox_used: Callable[[str], None] | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.ledger = UsageLedger(store.engine)
        self.on_sandbox_used = on_sandbox_used
        """Told when a run ends, so a sandbox's idle timer starts from then."""
        self.forkserver = ForkServer(recycle_after=settings.worker_recycle_after)
        self.feeds = ProjectFeeds()
        self.bus: EventBus | None = None
        """With replicas: stored events go to every replica, whose feeds it fills."""
        self.on_run_ended: Callable[[], None] | None = None
        """Told when a run gives its slot back (replicas then take the next queued run)."""
        self.runs: dict[str, LiveRun] = {}
        self._slots = asyncio.Semaphore(settings.max_concurrent_runs)
        self._queued = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._executing: set[asyncio.Task[None]] = set()

    def warm_up(self) -> None:
        """Start the fork server in the background, so the first run need not wait for it."""
        self._spawn(self.forkserver.start(), "fork server warm-up")

    def _spawn(self, work: Awaitable[None], name: str) -> asyncio.Task[None]:
        task = asyncio.ensure_future(work)
        task.set_name(name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # -- starting and finding ------------------------------------------------------------------

    def start(self, job: RunJob, provider: SandboxProvider) -> LiveRun:
        """Start a run whose records (run, prompt) are stored; it is live when this returns."""
        run = LiveRun(job=job, provider=provider, writer=OrderedWriter(f"run {job.run_id}"))
        self.runs[run.id] = run
        task = self._spawn(self._execute(run), f"run {run.id}")
        self._executing.add(task)
        task.add_done_callback(self._executing.discard)
        return run

    def active_run(self, project_id: str) -> LiveRun | None:
        return next(
            (r for r in self.runs.values() if r.job.project_id == project_id and not r.done), None
        )

    @property
    def running(self) -> int:
        return sum(1 for r in self.runs.values() if not r.done)

    def busy_sandboxes(self) -> set[str]:
        return {r.sandbox_id for r in self.runs.values() if not r.done and r.sandbox_id}

    async def events(self, run_id: str, after: int = 0) -> AsyncIterator[tuple[int, Event]]:
        """A live run's events as they come, or a finished run's from the store."""
        run = self.runs.get(run_id)
        if run is not None:
            async for item in run.log.follow(after):
                yield item
            return
        if self.bus is not None:  # another replica may be running it
            async for item in follow_stored(self.store, self.bus, run_id, after):
                yield item
            return
        await self.store.get_run(run_id)
        for seq, body in await self.store.events_after(run_id, after):
            yield seq, from_json(body)

    # -- cancelling and closing ----------------------------------------------------------------

    async def cancel(self, run_id: str, wait_s: float = CANCEL_WAIT_S) -> LiveRun | None:
        """Cancel a live run and wait (bounded) for it to end; None if it is not live here."""
        run = self.runs.get(run_id)
        if run is None:
            return None
        if not run.done:
            self._request_stop(run)
            await self._wait_ended(run, wait_s)
        return run

    def interrupt(self, run_id: str, why: str) -> None:
        """Stop a live run, which ends `interrupted` saying `why` (the store already has it
        ended: its replica was taken for dead)."""
        run = self.runs.get(run_id)
        if run is not None and not run.done:
            run.interrupted = why
            self._request_stop(run)

    def _request_stop(self, run: LiveRun) -> None:
        run.cancel_requested = True
        run.cancelled.set()
        if run.process is not None:
            with contextlib.suppress(ProcessLookupError):
                run.process.send_signal(signal.SIGTERM)

    @staticmethod
    async def _wait_ended(run: LiveRun, timeout: float) -> None:
        async def ended() -> None:
            async for _ in run.log.follow(len(run.log.events)):
                pass

        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(ended(), timeout)

    async def close(self, grace_s: float = CANCEL_GRACE_S) -> None:
        """Give runs in flight `grace_s` to finish, then stop them: each ends `interrupted`,
        keeping what it stored.

        Bounded whatever fails: a run still not ended after that (its store writes retrying
        against a database that is away, say) ends in memory; the store, still saying
        `running`, has it marked interrupted at the next start."""
        if self._executing:
            await asyncio.wait(self._executing, timeout=grace_s)
        for run in list(self.runs.values()):
            if not run.done:
                run.interrupted = INTERRUPTED
                self._request_stop(run)
        if self._executing:
            await asyncio.wait(self._executing, timeout=INTERRUPT_WAIT_S)
        leftover = list(self._tasks)  # runs past the grace, and the timers of finished ones
        for task in leftover:
            task.cancel()
        await asyncio.gather(*leftover, return_exceptions=True)
        for run in list(self.runs.values()):
            if not run.log.ended:
                # One that was storing its end shows that end; the others end interrupted.
                if run.ending is None:
                    run.state = "interrupted"
                await self._show_end(run, run.ending or error(INTERRUPTED, code="interrupted"))
            await run.writer.flush(timeout=1.0)
            await run.writer.aclose()
        await self.forkserver.close()

    async def interrupt_orphans(self) -> list[str]:
        """Runs the store says are running but no process of ours runs: the server restarted."""
        interrupted = []
        for record in await self.store.running_runs():
            if record.id in self.runs:
                continue
            event = error(INTERRUPTED, code="interrupted")
            seq = await self.store.last_event_seq(record.id) + 1
            await self.store.append_event(record.id, seq, to_json(event))
            await self.store.finish_run(
                record.id, "interrupted", tokens_used=0, sandbox_id=record.sandbox_id
            )
            interrupted.append(record.id)
        return interrupted

    # -- executing -----------------------------------------------------------------------------

    async def _publish(self, run: LiveRun, event: Event) -> None:
        """Memory first (followers and feeds), then the store, in order and retried."""
        had_sandbox = run.sandbox_id is not None
        seq = await run.log.append(event)
        body = to_json(event)
        store, job = self.store, run.job
        run.writer.submit(functools.partial(self._store_event, run, seq, body))
        sandbox_id = run.sandbox_id
        if not had_sandbox and sandbox_id and job.flow == "sandbox":
            provider = run.provider.name
            run.writer.submit(lambda: store.set_project_sandbox(job.project_id, sandbox_id))
            run.writer.submit(
                lambda: store.record_sandbox(sandbox_id, provider, job.project_id, "started")
            )
        self._notify_feeds(job.project_id, event)

    async def _store_event(self, run: LiveRun, seq: int, body: str) -> None:
        """Store an event; with replicas, then publish it (never before: see runs/follow.py)."""
        await self.store.append_event(run.id, seq, body)
        if self.bus is not None:
            await self.bus.publish_event(run.id, run.job.project_id, seq, body)

    def _notify_feeds(self, project_id: str, event: Event) -> None:
        """Project listeners here; with replicas they hear it from the bus, like everyone's."""
        if self.bus is None:
            self.feeds.notify(project_id, event)

    async def _execute(self, run: LiveRun) -> None:
        try:
            if not await self._take_slot(run):
                await self._end(run, error("The run was cancelled while queued.", code="cancelled"))
                return
            try:
                terminal, tokens = await self._run_worker(run)
            finally:
                self._slots.release()
                if self.on_run_ended is not None:
                    self.on_run_ended()
            if isinstance(terminal, CompleteEvent):
                terminal = await self._save_turn(run, terminal)
            elif keeps_files(terminal):
                await self._keep_files(run, terminal)
            if (
                terminal.type == "error"
                and not keeps_files(terminal)
                and not run.interrupted
                and not self.settings.keep_on_error
            ):
                await self._delete_sandboxes(run)
        except Exception as exc:
            log.exception("run %s failed in the supervisor", run.id)
            terminal, tokens = error(f"The supervisor lost the run: {exc}", code="internal"), 0
        await self._end(run, terminal, tokens)

    async def _take_slot(self, run: LiveRun) -> bool:
        """Wait for a slot (saying so when queued); False if cancelled meanwhile."""
        if not self._slots.locked():
            await self._slots.acquire()
            return True
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
            return await _first(self._slots.acquire(), run.cancelled.wait())
        finally:
            self._queued -= 1

    async def _run_worker(self, run: LiveRun) -> tuple[Event, int]:
        """Fork the worker, relay its events; the terminal event and the tokens it reports."""
        terminal: Event | None = None
        async for event in _read_events(await self._fork(run)):
            if is_terminal(event):
                terminal = event
            else:
                await self._publish(run, event)
        code = await self._wait(run) if run.process is not None else None
        if run.interrupted:
            return error(run.interrupted, code="interrupted"), 0
        if terminal is None:
            return error(
                f"Generation process exited with code {code}",
                code="cancelled" if run.cancel_requested else "worker_exited",
            ), 0
        tokens = terminal.data.tokensUsed if isinstance(terminal, CompleteEvent) else 0
        return terminal, tokens

    async def _fork(self, run: LiveRun) -> socket.socket:
        """Fork the run's worker; returns our end of its event stream.

        The stream is a socketpair, not a pipe: uvloop (the server's loop in production)
        closes a pipe's fd itself and then closes the file object it was given over it
        again, which closes whatever another thread opened in between (issue 14, item 10).
        A socket it detaches instead, so every loop closes it exactly once."""
        job_read, job_write = os.pipe()
        events, theirs = socket.socketpair()
        try:
            run.process = await self.forkserver.fork(job_read, theirs.fileno())
            if run.cancel_requested:
                run.process.send_signal(signal.SIGTERM)
        except BaseException:
            os.close(job_write)
            events.close()
            raise
        finally:
            os.close(job_read)
            theirs.close()
        message = json.dumps(
            {"job": run.job.model_dump(mode="json"), "settings": settings_to_json(self.settings)}
        ).encode()
        try:
            await asyncio.to_thread(_write_and_close, job_write, message)
        except BaseException:
            events.close()
            raise
        return events

    async def _wait(self, run: LiveRun) -> int:
        assert run.process is not None
        try:
            return await asyncio.wait_for(run.process.wait(), CANCEL_GRACE_S)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                run.process.kill()
            return await run.process.wait()

    async def _save_turn(self, run: LiveRun, complete: CompleteEvent) -> Event:
        """Make the finished turn the project's next version (a git commit and a snapshot)."""
        try:
            version = await self._save_version(run)
        except Exception as exc:
            log.exception("run %s: saving the version failed", run.id)
            return error(
                f"The app was built but saving its files failed: {exc}", code="save_failed"
            )
        complete.data.version = version.number
        self._store_answer(run)
        return complete

    async def _keep_files(self, run: LiveRun, stopped: ErrorEvent) -> None:
        """A run its budget stopped keeps what it wrote, as the project's next version."""
        if run.job.flow == "sandbox" and run.sandbox_id is None:
            return  # stopped before it had a sandbox: it wrote nothing
        try:
            version = await self._save_version(run)
        except Exception:
            log.exception("run %s: saving the files of a stopped run failed", run.id)
            return
        stopped.data.message += f" They are saved as version {version.number}."
        self._store_answer(run)

    async def _save_version(self, run: LiveRun) -> VersionRecord:
        job = run.job
        message = commit_message(job.request.prompt)
        if job.flow == "persistent":
            files = await retrying(
                lambda: self.store.files(job.project_id), SAVE_WITHIN_S, f"run {run.id}"
            )
            return await retrying(
                lambda: self.store.save_version(
                    job.project_id, files, message=message, run_id=run.id
                ),
                SAVE_WITHIN_S,
                f"run {run.id}",
            )
        assert run.sandbox_id is not None
        sandbox = await run.provider.get(run.sandbox_id)
        version, taken = await save_sandbox_version(
            self.store, sandbox, job.project_id, message, run.id, SAVE_WITHIN_S
        )
        if (warning := taken.warning()) is not None:
            await self._publish(run, progress("complete", warning, run.sandbox_id))
        return version

    def _store_answer(self, run: LiveRun) -> None:
        text, store, project_id = run.log.assistant_text(), self.store, run.job.project_id
        run.writer.submit(lambda: store.add_message(project_id, run.id, "assistant", text))

    async def _end(self, run: LiveRun, terminal: Event, tokens: int = 0) -> None:
        """Store the end, then show it: a follower that sees it finds the store agreeing. If the
        store does not answer within END_STORE_WAIT_S, memory goes first and it catches up."""
        run.state, run.ending = run.final_state(terminal), terminal
        run.tokens_used, run.finished_at = tokens, time.time()
        seq, body = run.log.next_seq, to_json(terminal)
        store, state, sandbox_id = self.store, run.state, run.sandbox_id
        run.writer.submit(functools.partial(self._store_event, run, seq, body))
        run.writer.submit(
            lambda: store.finish_run(run.id, state, tokens_used=tokens, sandbox_id=sandbox_id)
        )
        usage = usage_record(run.id, run.job.project_id, terminal)
        if usage is not None:
            ledger = self.ledger
            run.writer.submit(lambda: ledger.record(usage))
        await run.writer.flush(END_STORE_WAIT_S)
        await self._show_end(run, terminal)
        if sandbox_id and self.on_sandbox_used is not None:
            self.on_sandbox_used(sandbox_id)
        self._spawn(self._forget_later(run), f"forget run {run.id}")

    async def _show_end(self, run: LiveRun, terminal: Event) -> None:
        await run.log.append(terminal)
        self._notify_feeds(run.job.project_id, terminal)

    async def _forget_later(self, run: LiveRun) -> None:
        """Late followers are served from memory for a while, then from the store (once it has
        everything)."""
        await asyncio.sleep(FINISHED_RUN_MEMORY_S)
        await run.writer.flush(timeout=FINISHED_RUN_MEMORY_S)
        await run.writer.aclose()
        self.runs.pop(run.id, None)

    async def _delete_sandboxes(self, run: LiveRun) -> None:
        if run.job.flow == "persistent":
            return
        try:
            for info in await run.provider.list({"run": run.id}):
                await (await run.provider.get(info.id)).delete()
                run.writer.submit(
                    functools.partial(
                        self.store.record_sandbox,
                        info.id,
                        run.provider.name,
                        run.job.project_id,
                        "deleted",
                    )
                )
        except Exception:
            log.exception("could not delete the sandbox of failed run %s", run.id)


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


async def _read_events(events: socket.socket) -> AsyncIterator[Event]:
    reader, writer = await asyncio.open_unix_connection(sock=events, limit=MAX_EVENT_LINE)
    try:
        while line := await reader.readline():
            try:
                yield from_json(line)
            except ValidationError as exc:
                log.error("worker sent an invalid event: %s", exc)
    finally:
        writer.close()
