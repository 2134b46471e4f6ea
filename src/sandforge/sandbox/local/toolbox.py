"""The toolbox daemon: runs inside a local sandbox, the one program bwrap starts.

Standard library only, because it runs on the system Python inside the sandbox, and
threads rather than asyncio, because importing asyncio alone costs more than the whole
rest of a sandbox's start. bwrap's own init is PID 1 and reaps orphans; this daemon is
PID 2, and the sandbox ends when it does. Its file operations are in toolbox_files.py.

The host talks to it over a unix socket it never sees by path: the host creates the
listening socket in a directory only the host can reach and hands the daemon the file
descriptor (`--listen-fd`). One request and one reply per connection, in the message
format of sandbox/wire.py, the way Daytona's toolbox API serves exec, file and process
requests.

Under full isolation (`--command-uid`) the daemon is root of the sandbox's user namespace
and runs every command as another uid, so no command can signal it, trace it, read its
memory or take its descriptors (docs/isolation.md). It keeps only the capabilities that
takes, and acts as the commands' user on every file.

`forward` bridges previews (toolbox_bridge.py).
"""

from __future__ import annotations

import contextlib
import errno
import os
import resource
import select
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
import types
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

_HERE = os.path.dirname(__file__)


def _load(name: str, path: str) -> types.ModuleType:
    """A module of the daemon's, from an explicit path.

    The daemon runs with `-I -S` on the system Python, where sandforge is not importable;
    the launcher binds the daemon's files read-only and names where wire.py is.
    """
    module = types.ModuleType(name)
    module.__file__ = path
    sys.modules[name] = module  # so the daemon's other modules find sandforge_wire by name
    with open(path, "rb") as source:
        code = compile(source.read(), path, "exec")
    exec(code, module.__dict__)
    return module


if TYPE_CHECKING:
    from .. import wire
    from . import toolbox_bridge, toolbox_files
else:
    wire = _load("sandforge_wire", sys.argv[sys.argv.index("--wire") + 1])
    toolbox_files = _load("toolbox_files", os.path.join(_HERE, "toolbox_files.py"))
    toolbox_bridge = _load("toolbox_bridge", os.path.join(_HERE, "toolbox_bridge.py"))

REQUEST_TIMEOUT_S = 60.0
MAX_FDS = 4
LOG_TAIL_BYTES = 8192
EXITED_OUTPUT_WAIT_S = 1.0
"""How long a status of an exited process waits for its last output to be read."""
LOG_FILE_BYTES = 4 << 20
"""A process's log file starts over past this, so a chatty dev server cannot fill the disk;
its last LOG_TAIL_BYTES are kept in memory for process_status either way."""
DRAIN_AFTER_EXIT_S = 0.5
THREAD_STACK_BYTES = 512 << 10
COMMAND_OOM_SCORE_ADJ = 500

# Linux capability numbers and prctl options, which the os module does not name.
_CAP_KILL, _CAP_SETGID, _CAP_SETUID = 5, 6, 7
_LINUX_CAPABILITY_VERSION_3 = 0x20080522
_PR_SET_DUMPABLE = 4
_PR_CAPBSET_DROP = 24
_LAST_CAPABILITY = 63

Reply = dict[str, Any]
Op = Callable[[dict[str, Any], list[int]], Reply]


class ProcessLog:
    """A background process's output: read from its pipe into logs/<name>.log, capped.

    Commands never hold the file: they write into a pipe, and a thread of the daemon copies
    it to the file (starting it over past LOG_FILE_BYTES) and keeps the tail in memory.
    """

    def __init__(self, path: str) -> None:
        self._tail = bytearray()
        self._lock = threading.Lock()
        self._written = 0
        self._file = -1
        self._drained = threading.Event()
        self._settled = False
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_NONBLOCK
        with contextlib.suppress(OSError):
            self._file = os.open(path, flags | os.O_CLOEXEC, 0o600)
            if not stat.S_ISREG(os.fstat(self._file).st_mode):
                self.detach()  # a FIFO a command planted there gets nothing; the tail still does

    def pump(self, pipe_fd: int) -> None:
        try:
            while chunk := os.read(pipe_fd, 65536):
                with self._lock:
                    self._tail += chunk
                    del self._tail[:-LOG_TAIL_BYTES]
                    self._write(chunk)
        finally:
            os.close(pipe_fd)
            self.detach()
            self._drained.set()

    def settle(self, timeout: float) -> None:
        """The process exited: let what it wrote last reach the tail. Waited for once, and
        boundedly, as a child it left behind can hold the pipe open for ever."""
        if not self._settled:
            self._drained.wait(timeout)
            self._settled = True

    def _write(self, chunk: bytes) -> None:
        if self._file < 0:
            return
        try:
            if self._written + len(chunk) > LOG_FILE_BYTES:
                os.ftruncate(self._file, 0)
                os.lseek(self._file, 0, os.SEEK_SET)
                self._written = 0
            self._written += os.write(self._file, chunk)
        except OSError:
            pass  # a full disk loses the file's copy, never the process

    def tail(self) -> bytes:
        with self._lock:
            return bytes(self._tail)

    def detach(self) -> None:
        """Stop writing the file: a new process of the same name owns it now."""
        with self._lock:
            if self._file >= 0:
                os.close(self._file)
                self._file = -1


class Toolbox:
    def __init__(
        self,
        files: toolbox_files.Files,
        run_dir: str,
        output_cap: int,
        command_uid: int | None,
        oom_score_fd: int,
    ) -> None:
        self.files = files
        self.run_dir = run_dir
        self.output_cap = output_cap
        self.command_uid = command_uid
        self.oom_score_fd = oom_score_fd
        self.lock = threading.Lock()
        self.spawn_lock = threading.Lock()
        self.processes: dict[str, tuple[subprocess.Popen[bytes], ProcessLog]] = {}
        with contextlib.suppress(FileExistsError):
            os.mkdir(os.path.join(run_dir, "logs"), 0o700)

    # -- commands -----------------------------------------------------------------------------

    def _spawn(self, req: dict[str, Any], stdout: int, stderr: int) -> subprocess.Popen[bytes]:
        cmd = req["cmd"]
        if not isinstance(cmd, str):
            raise wire.Failure("bad_request", "cmd must be a string")
        env = dict(os.environ)
        extra = req.get("env") or {}
        if not isinstance(extra, dict):
            raise wire.Failure("bad_request", "env must be an object")
        env.update({str(k): str(v) for k, v in extra.items()})
        cwd = req.get("cwd")
        # Children inherit the OOM score at fork, so the daemon raises its own around the
        # spawn: when the sandbox runs out of memory, commands go before the daemon that
        # keeps it answering. Raising needs no privilege, nor does going back to 0.
        with self.spawn_lock:
            self._set_oom_score(COMMAND_OOM_SCORE_ADJ)
            try:
                proc = subprocess.Popen(
                    ["/bin/sh", "-c", cmd],
                    cwd=os.path.join(self.files.root, *toolbox_files.parts(cwd or ".")),
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=stdout,
                    stderr=stderr,
                    start_new_session=True,
                    close_fds=True,
                    user=self.command_uid,
                    group=self.command_uid,
                )
            except FileNotFoundError as exc:
                raise wire.Failure("file_not_found", f"cwd {cwd!r} does not exist") from exc
            except OSError as exc:
                raise wire.Failure(
                    "spawn_failed", f"cannot start the command: {exc.strerror}"
                ) from exc
            finally:
                self._set_oom_score(0)
        return proc

    def _set_oom_score(self, value: int) -> None:
        with contextlib.suppress(OSError):
            os.pwrite(self.oom_score_fd, str(value).encode(), 0)

    def exec(self, req: dict[str, Any], fds: list[int]) -> Reply:
        timeout = float(req.get("timeout_s") or 120)
        proc = self._spawn(req, subprocess.PIPE, subprocess.PIPE)
        assert proc.stdout is not None and proc.stderr is not None
        deadline = time.monotonic() + timeout
        out_fd, err_fd = proc.stdout.fileno(), proc.stderr.fileno()
        kept = {out_fd: bytearray(), err_fd: bytearray()}
        truncated = False
        timed_out = False
        poller = select.poll()
        for fd in kept:
            poller.register(fd, select.POLLIN)
        open_fds = set(kept)
        exited_at: float | None = None
        try:
            while open_fds:
                now = time.monotonic()
                if exited_at is None and proc.poll() is not None:
                    # Background children may hold the pipes; the whole group goes with the command.
                    exited_at = now
                    _kill_group(proc.pid)
                if exited_at is not None and now - exited_at > DRAIN_AFTER_EXIT_S:
                    break
                if now >= deadline:
                    timed_out = True
                    break
                wait = min(deadline - now, 0.05 if exited_at is not None else 0.2)
                for fd, _ in poller.poll(max(1, int(wait * 1000))):
                    chunk = os.read(fd, 65536)
                    if not chunk:
                        poller.unregister(fd)
                        open_fds.discard(fd)
                        continue
                    buf = kept[fd]
                    room = self.output_cap - len(buf)
                    if room > 0:
                        buf += chunk[:room]
                    if len(chunk) > room:
                        truncated = True
            if not timed_out and proc.poll() is None:
                try:
                    proc.wait(max(0.0, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    timed_out = True
        finally:
            _kill_group(proc.pid)
            proc.wait()
            proc.stdout.close()
            proc.stderr.close()
        code = proc.returncode
        return {
            "exit_code": 128 - code if code < 0 else code,
            "stdout": kept[out_fd].decode(errors="replace"),
            "stderr": kept[err_fd].decode(errors="replace"),
            "timed_out": timed_out,
            "truncated": truncated,
        }

    def start_process(self, req: dict[str, Any], fds: list[int]) -> Reply:
        name = _process_name(req["name"])
        self._stop(name)
        read_fd, write_fd = os.pipe()
        try:
            proc = self._spawn(req, write_fd, subprocess.STDOUT)
        except BaseException:
            os.close(read_fd)
            raise
        finally:
            os.close(write_fd)
        log = ProcessLog(os.path.join(self.run_dir, "logs", f"{name}.log"))
        toolbox_bridge.start_thread(log.pump, read_fd)
        with self.lock:
            self.processes[name] = (proc, log)
        return {"pid": proc.pid}

    def process_status(self, req: dict[str, Any], fds: list[int]) -> Reply:
        name = _process_name(req["name"])
        with self.lock:
            entry = self.processes.get(name)
        if entry is None:
            raise wire.Failure("process_not_found", f"no process named {name!r}")
        proc, log = entry
        code = proc.poll()
        if code is not None:
            log.settle(EXITED_OUTPUT_WAIT_S)
        return {
            "running": code is None,
            "exit_code": None if code is None else (128 - code if code < 0 else code),
            "log_tail": log.tail().decode(errors="replace"),
        }

    def stop_process(self, req: dict[str, Any], fds: list[int]) -> Reply:
        self._stop(_process_name(req["name"]))
        return {}

    def _stop(self, name: str) -> None:
        with self.lock:
            entry = self.processes.pop(name, None)
        if entry is None:
            return
        proc, log = entry
        log.detach()
        if proc.poll() is None:
            _kill_group(proc.pid)
            proc.wait()

    def stop_all(self) -> None:
        with self.lock:
            names = list(self.processes)
        for name in names:
            self._stop(name)

    def ping(self, req: dict[str, Any], fds: list[int]) -> Reply:
        return {"pid": os.getpid()}


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def _process_name(name: Any) -> str:
    if not isinstance(name, str) or not name.replace("-", "").replace("_", "").isalnum():
        raise wire.Failure("bad_name", f"{name!r} is not a process name (letters, digits, - and _)")
    return name


# -- serving ------------------------------------------------------------------------------------


def handle(ops: dict[str, Op], conn: socket.socket) -> None:
    fds: list[int] = []
    try:
        conn.settimeout(REQUEST_TIMEOUT_S)
        try:
            req = wire.receive(conn, fds=fds, max_fds=MAX_FDS)
            conn.settimeout(None)
            op = ops.get(str(req.get("op")))
            if op is None:
                raise wire.Failure("bad_request", f"unknown op {req.get('op')!r}")
            reply = wire.ok(**op(req, fds))
        except wire.Failure as exc:
            reply = wire.error(exc.code, exc.message)
        except (KeyError, TypeError, ValueError) as exc:
            reply = wire.error("bad_request", f"bad request: {exc!r}")
        except OSError as exc:
            reply = wire.error("os_error", str(exc))
        wire.send(conn, reply)
    except OSError:
        pass
    finally:
        for fd in fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        conn.close()


def serve(toolbox: Toolbox, listener: socket.socket, ready_fd: int | None) -> None:
    files = toolbox.files
    ops: dict[str, Op] = {
        "exec": toolbox.exec,
        "read_file": files.read_file,
        "write_file": files.write_file,
        "delete_file": files.delete_file,
        "list_files": files.list_files,
        "start_process": toolbox.start_process,
        "process_status": toolbox.process_status,
        "stop_process": toolbox.stop_process,
        "forward": toolbox_bridge.Bridge().forward,
        "ping": toolbox.ping,
    }

    def stop(signum: int, frame: Any) -> None:
        toolbox.stop_all()
        os._exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    if ready_fd is not None:
        os.write(ready_fd, b"ready\n")
        os.close(ready_fd)
    while True:
        try:
            conn, _ = listener.accept()
        except InterruptedError:
            continue
        except OSError as exc:
            if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                time.sleep(0.05)
                continue
            raise
        conn.setblocking(True)
        try:
            toolbox_bridge.start_thread(handle, ops, conn)
        except RuntimeError:  # no thread can start (pids limit): answer nothing, stay up
            conn.close()


# -- starting ---------------------------------------------------------------------------------


def _close_fds_except(keep: list[int]) -> None:
    """Close every fd the launcher did not name: bwrap leaves its own to its child."""
    low = 3
    for fd in sorted(keep):
        os.closerange(low, fd)
        low = fd + 1
    os.closerange(low, resource.getrlimit(resource.RLIMIT_NOFILE)[0])


def _keep_only_what_spawning_needs(command_uid: int) -> None:
    """As root of the sandbox's user namespace: keep the capabilities to run commands as
    `command_uid` and to signal them, and become that user for every file operation.

    Commands lose every capability when they change to their uid; this also empties the
    bounding and inheritable sets they inherit, and makes the daemon undumpable, so that
    /proc/<daemon>/ is off limits whatever else changes.
    """
    import ctypes  # only here: under partial isolation nothing needs it

    libc = ctypes.CDLL(None, use_errno=True)

    def check(result: int, what: str) -> None:
        if result != 0:
            raise OSError(ctypes.get_errno(), f"{what}: {os.strerror(ctypes.get_errno())}")

    check(libc.prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0), "prctl(PR_SET_DUMPABLE)")
    for cap in range(_LAST_CAPABILITY + 1):
        dropped = libc.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0)
        if dropped != 0 and ctypes.get_errno() != errno.EINVAL:  # EINVAL: past the last one
            check(dropped, f"prctl(PR_CAPBSET_DROP, {cap})")
    kept = (1 << _CAP_KILL) | (1 << _CAP_SETGID) | (1 << _CAP_SETUID)
    header = (ctypes.c_uint32 * 2)(_LINUX_CAPABILITY_VERSION_3, 0)
    # Two {effective, permitted, inheritable} words: capabilities 0-31, then 32-63.
    data = (ctypes.c_uint32 * 6)(kept, kept, 0, 0, 0, 0)
    check(libc.capset(header, data), "capset")
    # Per thread, and every later thread copies it from this one.
    libc.setfsgid(command_uid)
    libc.setfsuid(command_uid)
    if libc.setfsuid(-1) != command_uid:
        raise OSError(errno.EPERM, "setfsuid did not take")


def _args(argv: list[str]) -> dict[str, str]:
    # argparse costs ~10 ms of imports; the launcher is the only caller.
    args: dict[str, str] = {}
    it = iter(argv)
    for key in it:
        if not key.startswith("--"):
            raise SystemExit(f"unexpected argument {key!r}")
        args[key[2:]] = next(it)
    return args


def main() -> None:
    args = _args(sys.argv[1:])
    listen_fd, ready_fd = int(args["listen-fd"]), int(args["ready-fd"])
    _close_fds_except([listen_fd, ready_fd])
    os.umask(0o022)
    threading.stack_size(THREAD_STACK_BYTES)
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    limit = int(args["fsize-limit"])
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the daemon gets EFBIG, not killed
    files = toolbox_files.Files(
        args["root"],
        int(args["max-file-bytes"]),
        frozenset(filter(None, args["skip-dirs"].split("/"))),
    )
    command_uid = int(args["command-uid"]) if "command-uid" in args else None
    # Opened first: as the commands' user the daemon cannot open its own /proc files.
    oom_score_fd = os.open("/proc/self/oom_score_adj", os.O_WRONLY | os.O_CLOEXEC)
    if command_uid is not None:
        _keep_only_what_spawning_needs(command_uid)
    toolbox = Toolbox(files, args["run-dir"], int(args["output-cap"]), command_uid, oom_score_fd)
    if "registry-port" in args:
        toolbox_bridge.relay_outbound(int(args["registry-port"]), args["registry-socket"])
    listener = socket.socket(fileno=listen_fd)
    listener.setblocking(True)
    serve(toolbox, listener, ready_fd)


if __name__ == "__main__":
    main()
