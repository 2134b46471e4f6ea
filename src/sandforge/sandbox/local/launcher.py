"""Starting and stopping the one long-lived bwrap process of each local sandbox.

bwrap runs with --die-with-parent, so whoever starts it owns the sandbox's life.
That must be the server, not a generation's child process, or every preview
would die with the run that made it. Children therefore ask the server through
a control socket (`RemoteLauncher`); the server starts bwrap itself
(`BwrapLauncher`), and when the server exits no sandbox process is left behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import shutil
import signal
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

from ..base import SandboxError, SandboxSpec, SandboxUnavailable

PROJECT_DIR = "/workspace"
RUN_DIR = "/run/sandforge"
TOOLBOX_PATH = "/opt/sandforge/toolbox.py"
SANDBOX_UID = 1000
READY_TIMEOUT_S = 15.0
SANDBOX_PATH = "/usr/local/bin:/usr/bin:/bin"


class Launcher(Protocol):
    async def launch(self, sandbox_dir: Path, spec: SandboxSpec) -> None: ...
    async def terminate(self, sandbox_id: str) -> None: ...
    async def is_running(self, sandbox_id: str) -> bool: ...


@dataclass(frozen=True)
class Isolation:
    """Whether bwrap runs here, and if not, why and how to fix it."""

    available: bool
    problem: str = ""


@functools.cache
def check_isolation() -> Isolation:
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        return Isolation(
            False,
            "bubblewrap (bwrap) is not installed: run `apt-get install bubblewrap`, "
            "or set SANDFORGE_ALLOW_UNISOLATED=1 to run sandboxes without isolation",
        )
    probe = subprocess.run(
        [bwrap, "--unshare-all", "--ro-bind", "/", "/", "--", "true"],
        capture_output=True,
        text=True,
        check=False,
    )
    if probe.returncode != 0:
        return Isolation(
            False,
            f"bwrap cannot create namespaces here ({probe.stderr.strip()}): enable unprivileged "
            "user namespaces with `sysctl -w kernel.unprivileged_userns_clone=1` "
            "(and `user.max_user_namespaces=10000`), or set SANDFORGE_ALLOW_UNISOLATED=1",
        )
    return Isolation(True)


def _sandbox_python() -> tuple[str, list[str]]:
    """A Python inside the sandbox, and the bwrap args that make it visible."""
    if Path("/usr/bin/python3").exists():
        return "/usr/bin/python3", []
    prefix = sys.base_prefix
    return str(Path(prefix) / "bin" / "python3"), ["--ro-bind", prefix, prefix]


def sandbox_env(spec: SandboxSpec) -> dict[str, str]:
    """The whole environment of a sandbox: a minimal base plus the spec's own vars."""
    return {"PATH": SANDBOX_PATH, "HOME": "/tmp", "LANG": "C.UTF-8", **spec.env}


def bwrap_argv(sandbox_dir: Path, spec: SandboxSpec, ready_fd: int) -> list[str]:
    python, python_binds = _sandbox_python()
    toolbox = str(Path(__file__).with_name("toolbox.py"))
    argv = [
        "bwrap",
        "--unshare-all",
        "--die-with-parent",
        "--new-session",
        "--clearenv",
        "--uid",
        str(SANDBOX_UID),
        "--gid",
        str(SANDBOX_UID),
        "--hostname",
        "sandbox",
        "--ro-bind",
        "/usr",
        "/usr",
        "--symlink",
        "usr/bin",
        "/bin",
        "--symlink",
        "usr/sbin",
        "/sbin",
        "--symlink",
        "usr/lib",
        "/lib",
        "--symlink",
        "usr/lib64",
        "/lib64",
        "--ro-bind-try",
        "/etc/alternatives",
        "/etc/alternatives",
        "--ro-bind-try",
        "/etc/ssl",
        "/etc/ssl",
        "--ro-bind-try",
        "/etc/ca-certificates",
        "/etc/ca-certificates",
        "--ro-bind",
        str(sandbox_dir / "etc" / "passwd"),
        "/etc/passwd",
        "--ro-bind",
        str(sandbox_dir / "etc" / "group"),
        "/etc/group",
        "--proc",
        "/proc",
        "--dev",
        "/dev",
        "--tmpfs",
        "/tmp",
        "--bind",
        str(sandbox_dir / "workspace"),
        PROJECT_DIR,
        "--bind",
        str(sandbox_dir / "run"),
        RUN_DIR,
        "--ro-bind",
        toolbox,
        TOOLBOX_PATH,
        *python_binds,
        "--chdir",
        PROJECT_DIR,
        "--cap-drop",
        "ALL",
    ]
    for key, value in sandbox_env(spec).items():
        argv += ["--setenv", key, value]
    argv += [
        python,
        "-I",
        "-S",
        TOOLBOX_PATH,
        "--root",
        PROJECT_DIR,
        "--run-dir",
        RUN_DIR,
        "--ready-fd",
        str(ready_fd),
        "--output-cap",
        str(spec.output_cap_bytes),
        "--max-file-bytes",
        str(spec.max_file_bytes),
    ]
    return argv


def unisolated_argv(sandbox_dir: Path, spec: SandboxSpec, ready_fd: int) -> list[str]:
    return [
        sys.executable,
        "-I",
        "-S",
        str(Path(__file__).with_name("toolbox.py")),
        "--root",
        str(sandbox_dir / "workspace"),
        "--run-dir",
        str(sandbox_dir / "run"),
        "--ready-fd",
        str(ready_fd),
        "--output-cap",
        str(spec.output_cap_bytes),
        "--max-file-bytes",
        str(spec.max_file_bytes),
    ]


class BwrapLauncher:
    """Owns the sandbox processes; lives in the server."""

    def __init__(self, allow_unisolated: bool = False) -> None:
        self.allow_unisolated = allow_unisolated
        self._procs: dict[str, asyncio.subprocess.Process] = {}

    @property
    def isolated(self) -> bool:
        return check_isolation().available

    def _argv(self, sandbox_dir: Path, spec: SandboxSpec, ready_fd: int) -> list[str]:
        isolation = check_isolation()
        if isolation.available:
            return bwrap_argv(sandbox_dir, spec, ready_fd)
        if self.allow_unisolated:
            return unisolated_argv(sandbox_dir, spec, ready_fd)
        raise SandboxUnavailable(isolation.problem)

    async def launch(self, sandbox_dir: Path, spec: SandboxSpec) -> None:
        sandbox_id = sandbox_dir.name
        if sandbox_id in self._procs and self._procs[sandbox_id].returncode is None:
            return
        read_fd, write_fd = os.pipe()
        try:
            argv = self._argv(sandbox_dir, spec, write_fd)
            env = sandbox_env(spec) if not check_isolation().available else {}
            with open(sandbox_dir / "sandbox.log", "ab") as log:
                proc = await asyncio.create_subprocess_exec(
                    *argv,
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=log,
                    stderr=log,
                    pass_fds=(write_fd,),
                    env=env,
                    start_new_session=True,
                )
        finally:
            os.close(write_fd)
        self._procs[sandbox_id] = proc
        try:
            ready = await asyncio.wait_for(_read_all(read_fd), READY_TIMEOUT_S)
        except TimeoutError:
            ready = b""
        if not ready.startswith(b"ready"):
            await self.terminate(sandbox_id)
            log_tail = (sandbox_dir / "sandbox.log").read_bytes()[-2000:].decode(errors="replace")
            raise SandboxError(f"sandbox {sandbox_id} failed to start: {log_tail.strip() or 'no output'}")

    async def terminate(self, sandbox_id: str) -> None:
        proc = self._procs.pop(sandbox_id, None)
        if proc is None or proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        await proc.wait()

    async def is_running(self, sandbox_id: str) -> bool:
        proc = self._procs.get(sandbox_id)
        return proc is not None and proc.returncode is None

    async def close(self) -> None:
        for sandbox_id in list(self._procs):
            await self.terminate(sandbox_id)


async def _read_all(fd: int) -> bytes:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    pipe = os.fdopen(fd, "rb", buffering=0)
    transport, _ = await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), pipe
    )
    try:
        return await reader.read()
    finally:
        transport.close()


# -- the control socket: children ask the server to launch and terminate ----------------------


class ControlServer:
    """Serves a Launcher on a unix socket only its owner can reach (mode 0600)."""

    def __init__(self, launcher: BwrapLauncher, socket_path: Path, sandboxes_dir: Path) -> None:
        self.launcher = launcher
        self.socket_path = socket_path
        self.sandboxes_dir = sandboxes_dir
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        self.socket_path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()
        old_umask = os.umask(0o077)
        try:
            self._server = await asyncio.start_unix_server(self._handle, path=str(self.socket_path))
        finally:
            os.umask(old_umask)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = json.loads(await reader.readline())
            reply: dict[str, Any]
            try:
                sandbox_id = str(request["sandbox_id"])
                if "/" in sandbox_id or sandbox_id.startswith("."):
                    raise SandboxError(f"bad sandbox id {sandbox_id!r}")
                op = request["op"]
                if op == "launch":
                    await self.launcher.launch(
                        self.sandboxes_dir / sandbox_id, SandboxSpec(**request["spec"])
                    )
                    reply = {"ok": True}
                elif op == "terminate":
                    await self.launcher.terminate(sandbox_id)
                    reply = {"ok": True}
                elif op == "is_running":
                    reply = {"ok": True, "running": await self.launcher.is_running(sandbox_id)}
                else:
                    reply = {"ok": False, "error": f"unknown op {op!r}", "code": "bad_request"}
            except SandboxError as exc:
                reply = {"ok": False, "error": str(exc), "code": exc.code}
            writer.write(json.dumps(reply).encode() + b"\n")
            await writer.drain()
        except (ConnectionError, ValueError, KeyError, TypeError):
            pass
        finally:
            writer.close()


class RemoteLauncher:
    """A Launcher that asks the server's ControlServer; used inside generation workers."""

    def __init__(self, socket_path: Path) -> None:
        self.socket_path = socket_path

    async def _call(self, **request: Any) -> dict[str, Any]:
        try:
            reader, writer = await asyncio.open_unix_connection(str(self.socket_path))
        except OSError as exc:
            raise SandboxUnavailable(
                f"the sandforge server's sandbox control socket {self.socket_path} is not answering"
            ) from exc
        try:
            writer.write(json.dumps(request).encode() + b"\n")
            await writer.drain()
            reply: dict[str, Any] = json.loads(await reader.readline())
        finally:
            writer.close()
        if not reply.get("ok"):
            error = SandboxUnavailable if reply.get("code") == "sandbox_unavailable" else SandboxError
            raise error(str(reply.get("error")))
        return reply

    async def launch(self, sandbox_dir: Path, spec: SandboxSpec) -> None:
        await self._call(op="launch", sandbox_id=sandbox_dir.name, spec=asdict(spec))

    async def terminate(self, sandbox_id: str) -> None:
        await self._call(op="terminate", sandbox_id=sandbox_id)

    async def is_running(self, sandbox_id: str) -> bool:
        return bool((await self._call(op="is_running", sandbox_id=sandbox_id))["running"])
