"""The toolbox daemon: runs inside a local sandbox, the only process bwrap starts.

Standard library only, because it runs on the system Python inside the sandbox.
The host talks to it over a unix socket, one JSON request line and one JSON reply
line per connection, the way Daytona's toolbox API serves exec, file and process
requests. A `forward` request makes the daemon listen on `ports/<port>.sock` and
bridge each connection there to 127.0.0.1:<port> inside, so previews need no
host port and every sandbox can serve on port 3000.

File operations walk the path one directory at a time with O_NOFOLLOW, so a
symlink planted by a command can never lead them anywhere else.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import errno
import json
import os
import posixpath
import shutil
import signal
import stat
from collections.abc import Awaitable, Callable
from typing import Any

MAX_REQUEST_BYTES = 64 << 20
LOG_TAIL_BYTES = 8192
LIST_LIMIT = 5000
LIST_SKIP = {"node_modules", ".git", "__pycache__", ".venv", "dist", ".next"}

Reply = dict[str, Any]


class ToolboxError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class Toolbox:
    def __init__(self, root: str, run_dir: str, output_cap: int, max_file_bytes: int) -> None:
        self.root = root
        self.run_dir = run_dir
        self.output_cap = output_cap
        self.max_file_bytes = max_file_bytes
        self.processes: dict[str, asyncio.subprocess.Process] = {}
        self.forwards: dict[int, asyncio.AbstractServer] = {}
        os.makedirs(os.path.join(run_dir, "logs"), exist_ok=True)
        os.makedirs(os.path.join(run_dir, "ports"), exist_ok=True)

    # -- paths ------------------------------------------------------------------------------

    def _parts(self, path: str) -> list[str]:
        if not isinstance(path, str) or not path or "\x00" in path or path.startswith("/"):
            raise ToolboxError("path_escape", f"{path!r} is not a path relative to the project dir")
        clean = posixpath.normpath(path)
        if clean == ".":
            return []
        if clean == ".." or clean.startswith("../"):
            raise ToolboxError("path_escape", f"{path!r} points outside the project dir")
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
                        raise ToolboxError(
                            "path_escape", f"{part!r} is a symlink; file operations do not follow symlinks"
                        ) from exc
                    raise self._path_error(exc, part) from exc
                os.close(fd)
                fd = child
        except BaseException:
            os.close(fd)
            raise
        return fd

    def _path_error(self, exc: OSError, path: str) -> ToolboxError:
        if exc.errno == errno.ELOOP:
            return ToolboxError("path_escape", f"{path!r} is a symlink; file operations do not follow symlinks")
        if exc.errno == errno.ENOENT:
            return ToolboxError("file_not_found", f"{path!r} does not exist")
        if exc.errno == errno.ENOTDIR:
            return ToolboxError("file_not_found", f"{path!r} is not a directory")
        if exc.errno == errno.EISDIR:
            return ToolboxError("is_directory", f"{path!r} is a directory")
        return ToolboxError("os_error", f"{path!r}: {exc.strerror}")

    def _resolve_cwd(self, cwd: str | None) -> str:
        if not cwd:
            return self.root
        return os.path.join(self.root, *self._parts(cwd))

    # -- files --------------------------------------------------------------------------------

    async def read_file(self, req: dict[str, Any]) -> Reply:
        parts = self._parts(req["path"])
        if not parts:
            raise ToolboxError("is_directory", "the project dir itself is not a file")
        dfd = self._open_dir(parts[:-1])
        try:
            fd = os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW, dir_fd=dfd)
        except OSError as exc:
            raise self._path_error(exc, req["path"]) from exc
        finally:
            os.close(dfd)
        with os.fdopen(fd, "rb") as f:
            if stat.S_ISDIR(os.fstat(f.fileno()).st_mode):
                raise ToolboxError("is_directory", f"{req['path']!r} is a directory")
            data = f.read(self.max_file_bytes + 1)
        if len(data) > self.max_file_bytes:
            raise ToolboxError("file_too_large", f"{req['path']!r} is over {self.max_file_bytes} bytes")
        return {"content_b64": base64.b64encode(data).decode()}

    async def write_file(self, req: dict[str, Any]) -> Reply:
        parts = self._parts(req["path"])
        if not parts:
            raise ToolboxError("is_directory", "the project dir itself is not a file")
        data = base64.b64decode(req["content_b64"])
        if len(data) > self.max_file_bytes:
            raise ToolboxError(
                "file_too_large", f"{len(data)} bytes is over the {self.max_file_bytes}-byte file limit"
            )
        dfd = self._open_dir(parts[:-1], create=True)
        try:
            existed = True
            try:
                os.stat(parts[-1], dir_fd=dfd, follow_symlinks=False)
            except FileNotFoundError:
                existed = False
            flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW
            try:
                fd = os.open(parts[-1], flags, 0o644, dir_fd=dfd)
            except OSError as exc:
                raise self._path_error(exc, req["path"]) from exc
        finally:
            os.close(dfd)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        return {"created": not existed}

    async def delete_file(self, req: dict[str, Any]) -> Reply:
        parts = self._parts(req["path"])
        if not parts:
            raise ToolboxError("path_escape", "refusing to delete the project dir itself")
        dfd = self._open_dir(parts[:-1])
        try:
            st = os.stat(parts[-1], dir_fd=dfd, follow_symlinks=False)
            if stat.S_ISDIR(st.st_mode):
                shutil.rmtree(parts[-1], dir_fd=dfd)
            else:
                os.unlink(parts[-1], dir_fd=dfd)
        except OSError as exc:
            raise self._path_error(exc, req["path"]) from exc
        finally:
            os.close(dfd)
        return {}

    async def list_files(self, req: dict[str, Any]) -> Reply:
        parts = self._parts(req.get("path") or ".")
        dfd = self._open_dir(parts)
        prefix = "/".join(parts)
        entries: list[dict[str, Any]] = []
        try:
            for top, dirs, files, topfd in os.fwalk(".", dir_fd=dfd, follow_symlinks=False):
                dirs[:] = sorted(d for d in dirs if d not in LIST_SKIP)
                rel_top = posixpath.normpath(posixpath.join(prefix, top)) if prefix else top
                for name in dirs + sorted(files):
                    rel = posixpath.normpath(posixpath.join(rel_top, name))
                    try:
                        st = os.stat(name, dir_fd=topfd, follow_symlinks=False)
                    except FileNotFoundError:
                        continue
                    is_dir = stat.S_ISDIR(st.st_mode)
                    entries.append({"path": rel, "size": 0 if is_dir else st.st_size, "is_dir": is_dir})
                    if len(entries) >= LIST_LIMIT:
                        return {"entries": entries, "truncated": True}
        finally:
            os.close(dfd)
        return {"entries": entries, "truncated": False}

    # -- commands -----------------------------------------------------------------------------

    def _env(self, extra: dict[str, str] | None) -> dict[str, str]:
        env = dict(os.environ)
        env.update(extra or {})
        return env

    async def _read_capped(self, stream: asyncio.StreamReader | None) -> tuple[bytes, bool]:
        if stream is None:
            return b"", False
        kept = bytearray()
        truncated = False
        while chunk := await stream.read(65536):
            room = self.output_cap - len(kept)
            if room > 0:
                kept += chunk[:room]
            if len(chunk) > room:
                truncated = True
        return bytes(kept), truncated

    async def exec(self, req: dict[str, Any]) -> Reply:
        proc = await asyncio.create_subprocess_exec(
            "/bin/sh",
            "-c",
            req["cmd"],
            cwd=self._resolve_cwd(req.get("cwd")),
            env=self._env(req.get("env")),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
        )
        readers = asyncio.gather(self._read_capped(proc.stdout), self._read_capped(proc.stderr))
        timed_out = False
        try:
            await asyncio.wait_for(proc.wait(), timeout=float(req.get("timeout_s") or 120))
        except TimeoutError:
            timed_out = True
            _kill_group(proc.pid)
            await proc.wait()
        # Background children may hold the pipes open; the whole group goes once the command ends.
        _kill_group(proc.pid)
        (out, out_cut), (err, err_cut) = await readers
        return {
            "exit_code": proc.returncode if proc.returncode is not None else -1,
            "stdout": out.decode(errors="replace"),
            "stderr": err.decode(errors="replace"),
            "timed_out": timed_out,
            "truncated": out_cut or err_cut,
        }

    async def start_process(self, req: dict[str, Any]) -> Reply:
        name = _process_name(req["name"])
        await self._stop(name)
        log_path = os.path.join(self.run_dir, "logs", f"{name}.log")
        log = open(log_path, "wb")  # noqa: SIM115 - handed to the child, closed below
        try:
            proc = await asyncio.create_subprocess_exec(
                "/bin/sh",
                "-c",
                req["cmd"],
                cwd=self._resolve_cwd(req.get("cwd")),
                env=self._env(req.get("env")),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,
            )
        finally:
            log.close()
        self.processes[name] = proc
        return {"pid": proc.pid}

    async def process_status(self, req: dict[str, Any]) -> Reply:
        name = _process_name(req["name"])
        proc = self.processes.get(name)
        if proc is None:
            raise ToolboxError("process_not_found", f"no process named {name!r}")
        tail = b""
        with contextlib.suppress(OSError), open(os.path.join(self.run_dir, "logs", f"{name}.log"), "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - LOG_TAIL_BYTES))
            tail = f.read()
        return {
            "running": proc.returncode is None,
            "exit_code": proc.returncode,
            "log_tail": tail.decode(errors="replace"),
        }

    async def stop_process(self, req: dict[str, Any]) -> Reply:
        await self._stop(_process_name(req["name"]))
        return {}

    async def _stop(self, name: str) -> None:
        proc = self.processes.pop(name, None)
        if proc is not None and proc.returncode is None:
            _kill_group(proc.pid)
            await proc.wait()

    # -- preview bridge -------------------------------------------------------------------------

    async def forward(self, req: dict[str, Any]) -> Reply:
        port = int(req["port"])
        if not 1 <= port <= 65535:
            raise ToolboxError("bad_port", f"{port} is not a TCP port")
        rel = f"ports/{port}.sock"
        if port not in self.forwards:
            path = os.path.join(self.run_dir, rel)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)

            async def bridge(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
                try:
                    up_reader, up_writer = await asyncio.open_connection("127.0.0.1", port)
                except OSError:
                    writer.close()
                    return
                await asyncio.gather(_pump(reader, up_writer), _pump(up_reader, writer))

            self.forwards[port] = await asyncio.start_unix_server(bridge, path=path)
        return {"socket": rel}

    async def ping(self, req: dict[str, Any]) -> Reply:
        return {"pid": os.getpid()}


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while chunk := await reader.read(65536):
            writer.write(chunk)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (ConnectionError, OSError):
        pass
    finally:
        with contextlib.suppress(Exception):
            writer.close()


def _is_symlink(name: str, dir_fd: int) -> bool:
    try:
        return stat.S_ISLNK(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
    except OSError:
        return False


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def _process_name(name: Any) -> str:
    if not isinstance(name, str) or not name.replace("-", "").replace("_", "").isalnum():
        raise ToolboxError("bad_name", f"{name!r} is not a process name (letters, digits, - and _)")
    return name


async def serve(toolbox: Toolbox, socket_path: str, ready_fd: int | None) -> None:
    ops: dict[str, Callable[[dict[str, Any]], Awaitable[Reply]]] = {
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

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await reader.readline()
            req = json.loads(line)
            op = ops.get(req.get("op")) if isinstance(req, dict) else None
            if op is None:
                reply: Reply = {"ok": False, "code": "bad_request", "error": "unknown op"}
            else:
                try:
                    reply = {"ok": True, **(await op(req))}
                except ToolboxError as exc:
                    reply = {"ok": False, "code": exc.code, "error": str(exc)}
                except (KeyError, TypeError, ValueError) as exc:
                    reply = {"ok": False, "code": "bad_request", "error": f"bad request: {exc}"}
                except OSError as exc:
                    reply = {"ok": False, "code": "os_error", "error": str(exc)}
            writer.write(json.dumps(reply).encode() + b"\n")
            await writer.drain()
        except (ConnectionError, ValueError):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    with contextlib.suppress(FileNotFoundError):
        os.unlink(socket_path)
    server = await asyncio.start_unix_server(handle, path=socket_path, limit=MAX_REQUEST_BYTES)
    if ready_fd is not None:
        os.write(ready_fd, b"ready\n")
        os.close(ready_fd)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()
    for name in list(toolbox.processes):
        await toolbox._stop(name)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--root", required=True)
    parser.add_argument("--run-dir", required=True)
    parser.add_argument("--ready-fd", type=int)
    parser.add_argument("--output-cap", type=int, default=1 << 20)
    parser.add_argument("--max-file-bytes", type=int, default=10 << 20)
    args = parser.parse_args()
    os.umask(0o022)
    toolbox = Toolbox(args.root, args.run_dir, args.output_cap, args.max_file_bytes)
    asyncio.run(serve(toolbox, os.path.join(args.run_dir, "toolbox.sock"), args.ready_fd))


if __name__ == "__main__":
    main()
