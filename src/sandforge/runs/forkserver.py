"""A fork server: one process that has imported the heavy modules, forking a child per run.

A cold `python -m sandforge.runs.worker` spends seconds of CPU importing
pydantic-ai and the provider SDKs before it does anything. The fork server pays
that once; each run is still its own child process (a crash kills only its run),
but it starts in milliseconds and shares the imported code copy-on-write.

Messages are sandbox/wire.py's, one per packet of a SOCK_SEQPACKET socketpair (message
boundaries kept, fds passed with SCM_RIGHTS):

    supervisor → server   {"op": "run"} + [job_read_fd, events_write_fd]
    server → supervisor   {"ok": true, "pid": N}, or an error reply if it could not fork
    server → supervisor   {"op": "exited", "pid": N, "code": C}   (C < 0: killed by signal -C)
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import ctypes
import gc
import os
import selectors
import signal
import socket
import sys

from ..errors import Unavailable
from ..sandbox import wire
from ..sandbox.base import check_reply

MAX_MESSAGE = 4096
PR_SET_PDEATHSIG = 1


class WorkerStartFailed(Unavailable):
    """The fork server could not fork a run's worker (or is gone)."""

    code = "worker_start_failed"


def _die_with_parent() -> None:
    """SIGKILL this process when its parent exits, so nothing outlives the server."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def _exit_code(status: int) -> int:
    if os.WIFSIGNALED(status):
        return -os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


def _preload() -> None:
    """Import what every run needs, so children inherit it instead of importing it.

    Then freeze the heap: the collector never scans these objects again, so a child does
    not copy-on-write the shared pages just by collecting garbage.
    """
    import pydantic_ai.models.function  # noqa: F401  (scripted and factory models)
    import sqlalchemy.dialects.postgresql.asyncpg
    import sqlalchemy.dialects.sqlite.aiosqlite  # noqa: F401

    from ..projects import files  # noqa: F401

    with contextlib.suppress(ImportError):  # the optional Daytona SDK takes seconds to import
        from ..sandbox import daytona  # noqa: F401
    from . import worker  # noqa: F401  (the pipeline, agent, pydantic-ai, the SDKs)

    gc.collect()
    gc.freeze()


def _child(inherited: list[int], job_fd: int, events_fd: int) -> None:
    for fd in inherited:
        os.close(fd)
    signal.set_wakeup_fd(-1)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    _die_with_parent()
    from .worker import run_from_fds

    code = 1
    try:
        run_from_fds(job_fd, events_fd)
        code = 0
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def serve(control: socket.socket) -> None:
    _die_with_parent()
    _preload()
    wake_read, wake_write = os.pipe()
    os.set_blocking(wake_write, False)
    signal.set_wakeup_fd(wake_write)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    selector = selectors.DefaultSelector()
    selector.register(control, selectors.EVENT_READ)
    selector.register(wake_read, selectors.EVENT_READ)

    def send(message: wire.Message) -> None:
        control.sendall(wire.encode(message))

    while True:
        for key, _ in selector.select():
            if key.fileobj is control:
                data, fds, _, _ = socket.recv_fds(control, MAX_MESSAGE, 2)
                if not data:
                    return  # the supervisor let go of us; children die with us (PDEATHSIG)
                job_fd, events_fd = fds
                try:
                    pid = os.fork()
                except OSError as exc:
                    send(wire.error(WorkerStartFailed.code, f"cannot fork a worker: {exc}"))
                    pid = -1
                if pid == 0:
                    selector.close()
                    _child([control.fileno(), wake_read, wake_write], job_fd, events_fd)
                os.close(job_fd)
                os.close(events_fd)
                if pid > 0:
                    send(wire.ok(pid=pid))
            else:
                with contextlib.suppress(BlockingIOError):
                    os.read(wake_read, 4096)
                while True:
                    try:
                        pid, status = os.waitpid(-1, os.WNOHANG)
                    except ChildProcessError:
                        break
                    if pid == 0:
                        break
                    send(wire.request("exited", pid=pid, code=_exit_code(status)))


class WorkerHandle:
    """A forked run: signal it, wait for its exit code (relayed by the fork server)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self._exit: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    @property
    def returncode(self) -> int | None:
        return self._exit.result() if self._exit.done() else None

    def send_signal(self, sig: int) -> None:
        os.kill(self.pid, sig)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    async def wait(self) -> int:
        return await asyncio.shield(self._exit)

    def exited(self, code: int) -> None:
        if not self._exit.done():
            self._exit.set_result(code)


class _Zygote:
    """One fork server process and the runs it forked."""

    def __init__(self, process: asyncio.subprocess.Process, control: socket.socket) -> None:
        self.process = process
        self.control: socket.socket | None = control
        self.children: dict[int, WorkerHandle] = {}
        self.replies: collections.deque[asyncio.Future[wire.Message]] = collections.deque()
        self.forks = 0
        self.retired = False

    @classmethod
    async def spawn(cls) -> _Zygote:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "sandforge.runs.forkserver",
                str(theirs.fileno()),
                pass_fds=(theirs.fileno(),),
                stdin=asyncio.subprocess.DEVNULL,
            )
        finally:
            theirs.close()
        ours.setblocking(False)
        zygote = cls(process, ours)
        asyncio.get_running_loop().add_reader(ours.fileno(), zygote._on_message)
        return zygote

    def _on_message(self) -> None:
        assert self.control is not None
        try:
            data = self.control.recv(MAX_MESSAGE)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self.shut()
            return
        message = wire.decode(data, MAX_MESSAGE)
        if message.get("op") == "exited":
            exited = self.children.pop(int(message["pid"]), None)
            if exited is not None:
                exited.exited(int(message["code"]))
            if self.retired and not self.children:
                self.shut()
        elif self.replies:
            self.replies.popleft().set_result(message)

    async def fork(self, job_read_fd: int, events_write_fd: int) -> WorkerHandle:
        if self.control is None:
            raise WorkerStartFailed("the fork server is gone; the run could not start")
        reply = asyncio.get_running_loop().create_future()
        self.replies.append(reply)
        socket.send_fds(
            self.control, [wire.encode(wire.request("run"))], [job_read_fd, events_write_fd]
        )
        self.forks += 1
        handle = WorkerHandle(int(check_reply(await reply, WorkerStartFailed)["pid"]))
        self.children[handle.pid] = handle
        return handle

    def retire(self) -> None:
        """Take no more work; exit once the runs it forked have ended."""
        self.retired = True
        if not self.children:
            self.shut()

    def shut(self) -> None:
        """Close the control socket: the server process exits on EOF."""
        if self.control is not None:
            with contextlib.suppress(ValueError, OSError):
                asyncio.get_running_loop().remove_reader(self.control.fileno())
            self.control.close()
            self.control = None
        # Runs we can no longer hear from are reported as lost, forks never answered as failed.
        for handle in self.children.values():
            handle.exited(-1)
        self.children.clear()
        while self.replies:
            self.replies.popleft().set_exception(
                WorkerStartFailed("the fork server exited before it started the run")
            )


class ForkServer:
    """The supervisor's side: forks each run through a warm server, recycled every N forks."""

    def __init__(self, recycle_after: int = 200) -> None:
        self.recycle_after = recycle_after
        self._current: _Zygote | None = None
        self._all: list[_Zygote] = []
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        async with self._lock:
            await self._ensure()

    async def _ensure(self) -> _Zygote:
        current = self._current
        if current is None or current.control is None or current.forks >= self.recycle_after:
            if current is not None:
                current.retire()
            current = await _Zygote.spawn()
            self._current = current
            self._all = [z for z in self._all if z.control is not None] + [current]
        return current

    async def fork(self, job_read_fd: int, events_write_fd: int) -> WorkerHandle:
        async with self._lock:
            zygote = await self._ensure()
            return await zygote.fork(job_read_fd, events_write_fd)

    async def close(self) -> None:
        for zygote in self._all:
            zygote.shut()
            with contextlib.suppress(ProcessLookupError):
                zygote.process.terminate()
            await zygote.process.wait()
        self._all.clear()
        self._current = None


def main() -> None:
    control = socket.socket(fileno=int(sys.argv[1]))
    serve(control)


if __name__ == "__main__":
    main()
