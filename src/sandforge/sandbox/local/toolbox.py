"""The toolbox daemon: runs inside a local sandbox, the one program bwrap starts.

Standard library only, because it runs on the system Python inside the sandbox, and
threads rather than asyncio, because importing asyncio alone costs more than the whole
rest of a sandbox's start. bwrap's own init is PID 1 and reaps orphans; this daemon is
PID 2, and the sandbox ends when it does.

The host talks to it over a unix socket it never sees by path: the host creates the
listening socket in a directory only the host can reach and hands the daemon the file
descriptor (`--listen-fd`). One request and one reply per connection, in the message
format of sandbox/wire.py, the way Daytona's toolbox API serves exec, file and process
requests.

`forward` bridges previews: the host creates a listening socket for a port in its own
directory, passes the descriptor along with the request (SCM_RIGHTS), and the daemon
bridges every connection on it to 127.0.0.1:<port> inside (or [::1]). No host port is
opened and every sandbox can serve on port 3000.

File operations walk the path one directory at a time with O_NOFOLLOW and only ever
open regular files, so a symlink or FIFO planted by a command can neither lead them
elsewhere nor hang them.
"""

from __future__ import annotations

import binascii
import contextlib
import errno
import os
import posixpath
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
from typing import IO, TYPE_CHECKING, Any


def _load_wire() -> types.ModuleType:
    """sandbox/wire.py, from the file the launcher names with `--wire`.

    The daemon runs with `-I -S` on the system Python, where sandforge is not importable:
    the launcher binds wire.py read-only next to this file and passes its path.
    """
    path = sys.argv[sys.argv.index("--wire") + 1]
    module = types.ModuleType("sandforge_wire")
    module.__file__ = path
    with open(path, "rb") as source:
        code = compile(source.read(), path, "exec")
    exec(code, module.__dict__)
    return module


if TYPE_CHECKING:
    from .. import wire
else:
    wire = _load_wire()

REQUEST_TIMEOUT_S = 60.0
MAX_FDS = 4
LOG_TAIL_BYTES = 8192
LIST_LIMIT = 5000
DRAIN_AFTER_EXIT_S = 0.5
THREAD_STACK_BYTES = 512 << 10
BRIDGE_CONNECT_TIMEOUT_S = 10.0
COMMAND_OOM_SCORE_ADJ = 500

Reply = dict[str, Any]
Op = Callable[[dict[str, Any], list[int]], Reply]


def _b64encode(data: bytes) -> str:
    return binascii.b2a_base64(data, newline=False).decode()


def _b64decode(text: str) -> bytes:
    try:
        return binascii.a2b_base64(text)
    except binascii.Error as exc:
        raise wire.Failure("bad_request", f"content is not base64: {exc}") from exc


class Toolbox:
    def __init__(
        self,
        root: str,
        run_dir: str,
        output_cap: int,
        max_file_bytes: int,
        skipped_dirs: frozenset[str],
    ) -> None:
        self.root = root
        self.run_dir = run_dir
        self.output_cap = output_cap
        self.max_file_bytes = max_file_bytes
        self.skipped_dirs = skipped_dirs
        self.lock = threading.Lock()
        self.spawn_lock = threading.Lock()
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.forwards: dict[int, socket.socket] = {}
        for sub in ("logs",):
            with contextlib.suppress(FileExistsError):
                os.mkdir(os.path.join(run_dir, sub), 0o700)

    # -- paths ------------------------------------------------------------------------------

    def _parts(self, path: Any) -> list[str]:
        if not isinstance(path, str) or not path or "\x00" in path or path.startswith("/"):
            raise wire.Failure("path_escape", f"{path!r} is not a path relative to the project dir")
        clean = posixpath.normpath(path)
        if clean == ".":
            return []
        if clean == ".." or clean.startswith("../"):
            raise wire.Failure("path_escape", f"{path!r} points outside the project dir")
        return clean.split("/")

    def _open_dir(self, parts: list[str], create: bool = False) -> int:
        fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY)
        try:
            for part in parts:
                if create:
                    with contextlib.suppress(FileExistsError):
                        os.mkdir(part, 0o755, dir_fd=fd)
                try:
                    child = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
                except OSError as exc:
                    if _is_symlink(part, fd):
                        raise wire.Failure(
                            "path_escape",
                            f"{part!r} is a symlink; file operations do not follow symlinks",
                        ) from exc
                    raise _path_error(exc, part) from exc
                os.close(fd)
                fd = child
        except BaseException:
            os.close(fd)
            raise
        return fd

    def _resolve_cwd(self, cwd: Any) -> str:
        if not cwd:
            return self.root
        return os.path.join(self.root, *self._parts(cwd))

    # -- files --------------------------------------------------------------------------------

    def read_file(self, req: dict[str, Any], fds: list[int]) -> Reply:
        parts = self._parts(req["path"])
        if not parts:
            raise wire.Failure("is_directory", "the project dir itself is not a file")
        dfd = self._open_dir(parts[:-1])
        try:
            fd = os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=dfd)
        except OSError as exc:
            raise _path_error(exc, req["path"]) from exc
        finally:
            os.close(dfd)
        with os.fdopen(fd, "rb") as f:
            mode = os.fstat(f.fileno()).st_mode
            if stat.S_ISDIR(mode):
                raise wire.Failure("is_directory", f"{req['path']!r} is a directory")
            if not stat.S_ISREG(mode):
                raise wire.Failure("not_a_file", f"{req['path']!r} is not a regular file")
            data = f.read(self.max_file_bytes + 1)
        if len(data) > self.max_file_bytes:
            raise wire.Failure(
                "file_too_large",
                f"{req['path']!r} is over the {self.max_file_bytes}-byte file limit",
            )
        return {"content_b64": _b64encode(data)}

    def write_file(self, req: dict[str, Any], fds: list[int]) -> Reply:
        parts = self._parts(req["path"])
        if not parts:
            raise wire.Failure("is_directory", "the project dir itself is not a file")
        data = _b64decode(req["content_b64"])
        if len(data) > self.max_file_bytes:
            raise wire.Failure(
                "file_too_large",
                f"{len(data)} bytes is over the {self.max_file_bytes}-byte file limit",
            )
        dfd = self._open_dir(parts[:-1], create=True)
        try:
            existed = True
            try:
                st = os.stat(parts[-1], dir_fd=dfd, follow_symlinks=False)
                if stat.S_ISLNK(st.st_mode):
                    raise wire.Failure(
                        "path_escape",
                        f"{req['path']!r} is a symlink; file operations do not follow symlinks",
                    )
            except FileNotFoundError:
                existed = False
            flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK
            try:
                fd = os.open(parts[-1], flags, 0o644, dir_fd=dfd)
            except OSError as exc:
                raise _path_error(exc, req["path"]) from exc
        finally:
            os.close(dfd)
        with os.fdopen(fd, "wb") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                raise wire.Failure("not_a_file", f"{req['path']!r} is not a regular file")
            try:
                f.truncate(0)
                f.write(data)
                f.flush()
            except OSError as exc:
                raise _path_error(exc, req["path"]) from exc
        return {"created": not existed}

    def delete_file(self, req: dict[str, Any], fds: list[int]) -> Reply:
        parts = self._parts(req["path"])
        if not parts:
            raise wire.Failure("path_escape", "refusing to delete the project dir itself")
        dfd = self._open_dir(parts[:-1])
        try:
            st = os.stat(parts[-1], dir_fd=dfd, follow_symlinks=False)
            if stat.S_ISDIR(st.st_mode):
                import shutil

                shutil.rmtree(parts[-1], dir_fd=dfd)
            else:
                os.unlink(parts[-1], dir_fd=dfd)
        except OSError as exc:
            raise _path_error(exc, req["path"]) from exc
        finally:
            os.close(dfd)
        return {}

    def list_files(self, req: dict[str, Any], fds: list[int]) -> Reply:
        parts = self._parts(req.get("path") or ".")
        dfd = self._open_dir(parts)
        prefix = "/".join(parts)
        entries: list[dict[str, Any]] = []
        try:
            for top, dirs, files, topfd in os.fwalk(".", dir_fd=dfd, follow_symlinks=False):
                dirs[:] = sorted(d for d in dirs if d not in self.skipped_dirs)
                rel_top = posixpath.normpath(posixpath.join(prefix, top)) if prefix else top
                for name in dirs + sorted(files):
                    rel = posixpath.normpath(posixpath.join(rel_top, name))
                    try:
                        st = os.stat(name, dir_fd=topfd, follow_symlinks=False)
                    except FileNotFoundError:
                        continue
                    is_dir = stat.S_ISDIR(st.st_mode)
                    entries.append(
                        {"path": rel, "size": 0 if is_dir else st.st_size, "is_dir": is_dir}
                    )
                    if len(entries) >= LIST_LIMIT:
                        return {"entries": entries, "truncated": True}
        finally:
            os.close(dfd)
        return {"entries": entries, "truncated": False}

    # -- commands -----------------------------------------------------------------------------

    def _spawn(
        self, req: dict[str, Any], stdout: int | IO[bytes], stderr: int
    ) -> subprocess.Popen[bytes]:
        cmd = req["cmd"]
        if not isinstance(cmd, str):
            raise wire.Failure("bad_request", "cmd must be a string")
        env = dict(os.environ)
        extra = req.get("env") or {}
        if not isinstance(extra, dict):
            raise wire.Failure("bad_request", "env must be an object")
        env.update({str(k): str(v) for k, v in extra.items()})
        # Children inherit the OOM score at fork, so the daemon raises its own around the
        # spawn: when the sandbox runs out of memory, commands go before the daemon that
        # keeps it answering. Raising needs no privilege, nor does going back to 0.
        with self.spawn_lock:
            _set_oom_score(COMMAND_OOM_SCORE_ADJ)
            try:
                proc = subprocess.Popen(
                    ["/bin/sh", "-c", cmd],
                    cwd=self._resolve_cwd(req.get("cwd")),
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=stdout,
                    stderr=stderr,
                    start_new_session=True,
                    close_fds=True,
                )
            except FileNotFoundError as exc:
                raise wire.Failure(
                    "file_not_found", f"cwd {req.get('cwd')!r} does not exist"
                ) from exc
            except OSError as exc:
                raise wire.Failure(
                    "spawn_failed", f"cannot start the command: {exc.strerror}"
                ) from exc
            finally:
                _set_oom_score(0)
        return proc

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
        log_fd = os.open(
            os.path.join(self.run_dir, "logs", f"{name}.log"),
            os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
            0o600,
        )
        try:
            if not stat.S_ISREG(os.fstat(log_fd).st_mode):
                raise wire.Failure("not_a_file", f"the log of {name!r} is not a regular file")
            proc = self._spawn(req, log_fd, subprocess.STDOUT)
        finally:
            os.close(log_fd)
        with self.lock:
            self.processes[name] = proc
        return {"pid": proc.pid}

    def process_status(self, req: dict[str, Any], fds: list[int]) -> Reply:
        name = _process_name(req["name"])
        with self.lock:
            proc = self.processes.get(name)
        if proc is None:
            raise wire.Failure("process_not_found", f"no process named {name!r}")
        code = proc.poll()
        tail = b""
        with contextlib.suppress(OSError):
            fd = os.open(
                os.path.join(self.run_dir, "logs", f"{name}.log"),
                os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
            )
            with os.fdopen(fd, "rb") as f:
                if stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                    f.seek(0, os.SEEK_END)
                    f.seek(max(0, f.tell() - LOG_TAIL_BYTES))
                    tail = f.read(LOG_TAIL_BYTES)
        return {
            "running": code is None,
            "exit_code": None if code is None else (128 - code if code < 0 else code),
            "log_tail": tail.decode(errors="replace"),
        }

    def stop_process(self, req: dict[str, Any], fds: list[int]) -> Reply:
        self._stop(_process_name(req["name"]))
        return {}

    def _stop(self, name: str) -> None:
        with self.lock:
            proc = self.processes.pop(name, None)
        if proc is not None and proc.poll() is None:
            _kill_group(proc.pid)
            proc.wait()

    def stop_all(self) -> None:
        with self.lock:
            names = list(self.processes)
        for name in names:
            self._stop(name)

    # -- preview bridge -------------------------------------------------------------------------

    def forward(self, req: dict[str, Any], fds: list[int]) -> Reply:
        port = int(req["port"])
        if not 1 <= port <= 65535:
            raise wire.Failure("bad_port", f"{port} is not a TCP port")
        with self.lock:
            active = port in self.forwards
            if not fds or active:
                return {"active": active, "adopted": False}
            listener = socket.socket(fileno=fds.pop(0))
            if listener.family != socket.AF_UNIX or listener.type != socket.SOCK_STREAM:
                listener.close()
                raise wire.Failure("bad_request", "forward needs a listening unix stream socket")
            listener.setblocking(True)
            self.forwards[port] = listener
        _thread(self._accept_forward, listener, port)
        return {"active": True, "adopted": True}

    def _accept_forward(self, listener: socket.socket, port: int) -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                break
            _thread(_bridge, conn, port)
        with self.lock:
            if self.forwards.get(port) is listener:
                del self.forwards[port]

    def ping(self, req: dict[str, Any], fds: list[int]) -> Reply:
        return {"pid": os.getpid()}


def _bridge(conn: socket.socket, port: int) -> None:
    upstream: socket.socket | None = None
    for family, host in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
        candidate = socket.socket(family, socket.SOCK_STREAM)
        candidate.settimeout(BRIDGE_CONNECT_TIMEOUT_S)
        try:
            candidate.connect((host, port))
        except OSError:
            candidate.close()
            continue
        candidate.settimeout(None)
        upstream = candidate
        break
    if upstream is None:
        conn.close()
        return
    other = _thread(_pump, upstream, conn)
    _pump(conn, upstream)
    other.join()
    conn.close()
    upstream.close()


def _pump(src: socket.socket, dst: socket.socket) -> None:
    try:
        while chunk := src.recv(65536):
            dst.sendall(chunk)
    except OSError:
        pass
    with contextlib.suppress(OSError):
        dst.shutdown(socket.SHUT_WR)


def _thread(target: Callable[..., None], *args: Any) -> threading.Thread:
    thread = threading.Thread(target=target, args=args, daemon=True)
    thread.start()
    return thread


def _path_error(exc: OSError, path: str) -> wire.Failure:
    if exc.errno == errno.ELOOP:
        return wire.Failure(
            "path_escape", f"{path!r} is a symlink; file operations do not follow symlinks"
        )
    if exc.errno == errno.ENOENT:
        return wire.Failure("file_not_found", f"{path!r} does not exist")
    if exc.errno == errno.ENOTDIR:
        return wire.Failure("file_not_found", f"{path!r} is not a directory")
    if exc.errno == errno.EISDIR:
        return wire.Failure("is_directory", f"{path!r} is a directory")
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return wire.Failure("disk_full", f"{path!r}: the sandbox's disk is full")
    if exc.errno == errno.EFBIG:
        return wire.Failure("file_too_large", f"{path!r}: over the sandbox's file size limit")
    if exc.errno == errno.ENXIO:
        return wire.Failure("not_a_file", f"{path!r} is not a regular file")
    return wire.Failure("os_error", f"{path!r}: {exc.strerror}")


def _is_symlink(name: str, dir_fd: int) -> bool:
    try:
        return stat.S_ISLNK(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
    except OSError:
        return False


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def _set_oom_score(value: int) -> None:
    with contextlib.suppress(OSError), open("/proc/self/oom_score_adj", "w") as f:
        f.write(str(value))


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
    ops: dict[str, Op] = {
        "exec": toolbox.exec,
        "read_file": toolbox.read_file,
        "write_file": toolbox.write_file,
        "delete_file": toolbox.delete_file,
        "list_files": toolbox.list_files,
        "start_process": toolbox.start_process,
        "process_status": toolbox.process_status,
        "stop_process": toolbox.stop_process,
        "forward": toolbox.forward,
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
            _thread(handle, ops, conn)
        except RuntimeError:  # no thread can start (pids limit): answer nothing, stay up
            conn.close()


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
    os.umask(0o022)
    threading.stack_size(THREAD_STACK_BYTES)
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if "fsize-limit" in args:
        limit = int(args["fsize-limit"])
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the daemon gets EFBIG, not killed
    toolbox = Toolbox(
        args["root"],
        args["run-dir"],
        int(args.get("output-cap", 1 << 20)),
        int(args.get("max-file-bytes", 10 << 20)),
        frozenset(filter(None, args.get("skip-dirs", "").split("/"))),
    )
    listener = socket.socket(fileno=int(args["listen-fd"]))
    listener.setblocking(True)
    ready = args.get("ready-fd")
    serve(toolbox, listener, int(ready) if ready is not None else None)


if __name__ == "__main__":
    main()
