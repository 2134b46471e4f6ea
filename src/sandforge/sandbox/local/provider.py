"""The embedded local provider: one bwrap sandbox per directory under the data dir.

<sandboxes_dir>/<id>/meta.json    spec, labels, preview token (never mounted inside)
                    /workspace/   the project dir, /workspace inside
                    /run/         toolbox.sock, ports/*.sock, logs/ (/run/sandforge inside)
                    /etc/         passwd and group for the sandbox user
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import secrets
import shutil
import socket
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ... import ids
from ...config import SandboxProviderName
from ..base import (
    ExecResult,
    FileEntry,
    HostDiskFull,
    ProcessStatus,
    SandboxError,
    SandboxInfo,
    SandboxNotFound,
    SandboxSpec,
    SandboxState,
    SandboxUnavailable,
    Upstream,
    normalize_relative,
)
from ..metering import ResourceSample
from .bwrap import CTL_DIR, TOOLBOX_SOCKET, Launcher, sandbox_dirs
from .client import ToolboxClient
from .command import PROJECT_DIR
from .isolation import cgroup_driver
from .unix import listen_unix
from .users import host_uid


class LocalSandbox:
    provider = "local"

    def __init__(self, directory: Path, meta: dict[str, Any], launcher: Launcher) -> None:
        self._dir = directory
        self._meta = meta
        self._launcher = launcher
        self._spec = SandboxSpec(**meta["spec"])
        self._toolbox = ToolboxClient(str(directory / CTL_DIR / TOOLBOX_SOCKET), directory.name)

    @property
    def id(self) -> str:
        return self._dir.name

    @property
    def project_dir(self) -> str:
        return PROJECT_DIR

    @property
    def spec(self) -> SandboxSpec:
        return self._spec

    async def info(self) -> SandboxInfo:
        running = await self._launcher.is_running(self.id)
        return _info(self.id, self._meta, SandboxState.STARTED if running else SandboxState.STOPPED)

    async def resources(self) -> ResourceSample | None:
        """CPU time and memory in use, from the sandbox's cgroup (None without cgroups)."""
        return await asyncio.to_thread(_cgroup_sample, self.id)

    async def exec(
        self,
        cmd: str,
        *,
        cwd: str | None = None,
        env: dict[str, str] | None = None,
        timeout: float | None = None,
    ) -> ExecResult:
        limit = timeout or self._spec.exec_timeout_s
        reply = await self._toolbox.call(
            "exec",
            reply_timeout=limit + 10,
            cmd=cmd,
            cwd=normalize_relative(cwd) if cwd else None,
            env=env or {},
            timeout_s=limit,
        )
        return ExecResult(
            exit_code=int(reply["exit_code"]),
            stdout=str(reply["stdout"]),
            stderr=str(reply["stderr"]),
            timed_out=bool(reply["timed_out"]),
            truncated=bool(reply["truncated"]),
        )

    async def start_process(
        self, name: str, cmd: str, *, cwd: str | None = None, env: dict[str, str] | None = None
    ) -> None:
        await self._toolbox.call(
            "start_process",
            name=name,
            cmd=cmd,
            cwd=normalize_relative(cwd) if cwd else None,
            env=env or {},
        )

    async def process_status(self, name: str) -> ProcessStatus:
        reply = await self._toolbox.call("process_status", name=name)
        exit_code = reply.get("exit_code")
        return ProcessStatus(
            name=name,
            running=bool(reply["running"]),
            exit_code=int(exit_code) if exit_code is not None else None,
            log_tail=str(reply["log_tail"]),
        )

    async def read_file(self, path: str) -> bytes:
        reply = await self._toolbox.call("read_file", path=normalize_relative(path))
        return base64.b64decode(reply["content_b64"])

    async def write_file(self, path: str, content: bytes) -> None:
        await self._toolbox.call(
            "write_file",
            path=normalize_relative(path),
            content_b64=base64.b64encode(content).decode(),
        )

    async def list_files(self, path: str = ".") -> list[FileEntry]:
        reply = await self._toolbox.call("list_files", path=normalize_relative(path))
        return [
            FileEntry(path=str(e["path"]), size=int(e["size"]), is_dir=bool(e["is_dir"]))
            for e in reply["entries"]
        ]

    async def delete_file(self, path: str) -> None:
        await self._toolbox.call("delete_file", path=normalize_relative(path))

    async def upstream(self, port: int) -> Upstream:
        """The socket that reaches 127.0.0.1:`port` inside, bridged by the daemon.

        The host creates the socket in `ctl/ports/`, where the sandbox cannot plant
        anything, and hands the daemon its descriptor; the daemon adopts it unless it
        already forwards that port (then the one in place stays).
        """
        if not 1 <= port <= 65535:
            raise SandboxError(f"{port} is not a TCP port")
        path = self._dir / CTL_DIR / "ports" / f"{port}.sock"
        reply = await self._toolbox.call("forward", port=port)
        if not reply.get("active") or not path.exists():
            listener, tmp = await asyncio.to_thread(_port_listener, path)
            try:
                reply = await self._toolbox.call_with_fd("forward", listener.fileno(), port=port)
                if reply.get("adopted"):
                    await asyncio.to_thread(os.replace, tmp, path)
            finally:
                listener.close()
                with contextlib.suppress(FileNotFoundError):
                    await asyncio.to_thread(tmp.unlink)
        return Upstream(base_url="http://sandbox", uds=str(path))

    async def stop(self) -> None:
        await self._launcher.terminate(self.id)

    async def start(self) -> None:
        await self._launcher.launch(self._dir, self._spec)

    async def delete(self) -> None:
        await self._launcher.terminate(self.id)
        await asyncio.to_thread(shutil.rmtree, self._dir, True)


def _cgroup_sample(sandbox_id: str) -> ResourceSample | None:
    try:
        cgroup = cgroup_driver().get(sandbox_id)
    except SandboxUnavailable:
        return None
    cpu_seconds, memory_bytes = cgroup.usage()
    if cpu_seconds is None and memory_bytes is None:
        return None
    return ResourceSample(cpu_seconds=cpu_seconds, memory_bytes=memory_bytes)


def _info(sandbox_id: str, meta: dict[str, Any], state: SandboxState) -> SandboxInfo:
    return SandboxInfo(
        id=sandbox_id,
        provider="local",
        state=state,
        labels=dict(meta["spec"]["labels"]),
        public=bool(meta["spec"]["public"]),
        created_at=float(meta["created_at"]),
        preview_token=str(meta["preview_token"]),
    )


def _port_listener(path: Path) -> tuple[socket.socket, Path]:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    return listen_unix(tmp), tmp


def _prepare_dir(directory: Path, meta: dict[str, Any]) -> None:
    directory.parent.mkdir(parents=True, exist_ok=True)
    directory.mkdir(mode=0o700)
    (directory / "meta.json").write_text(json.dumps(meta))


def _unused_id(sandboxes_dir: Path) -> str:
    """A new id whose host uid no other sandbox here has."""
    taken = {host_uid(p.name) for p in sandbox_dirs(sandboxes_dir)}
    while True:
        sandbox_id = ids.new_id("sandbox")
        if host_uid(sandbox_id) not in taken:
            return sandbox_id


class LocalSandboxProvider:
    name: SandboxProviderName = "local"

    def __init__(
        self, sandboxes_dir: Path, launcher: Launcher, *, min_free_disk_mb: int = 0
    ) -> None:
        """`min_free_disk_mb`: refuse new sandboxes below this much free space on the disk
        of `sandboxes_dir` (SANDFORGE_MIN_FREE_DISK_MB; 0, the default here, never refuses)."""
        self.sandboxes_dir = sandboxes_dir
        self.launcher = launcher
        self.min_free_disk_mb = min_free_disk_mb

    async def create(self, spec: SandboxSpec) -> LocalSandbox:
        await asyncio.to_thread(self._check_free_disk)
        sandbox_id = await asyncio.to_thread(_unused_id, self.sandboxes_dir)
        directory = self.sandboxes_dir / sandbox_id
        meta = {
            "spec": asdict(spec),
            "created_at": time.time(),
            "preview_token": secrets.token_urlsafe(24),
        }
        await asyncio.to_thread(_prepare_dir, directory, meta)
        sandbox = LocalSandbox(directory, meta, self.launcher)
        try:
            await sandbox.start()
        except BaseException:
            await sandbox.delete()
            raise
        return sandbox

    def _check_free_disk(self) -> None:
        if self.min_free_disk_mb <= 0:
            return
        existing = next(p for p in (self.sandboxes_dir, *self.sandboxes_dir.parents) if p.exists())
        disk = os.statvfs(existing)
        free_mb = disk.f_bavail * disk.f_frsize >> 20
        if free_mb < self.min_free_disk_mb:
            raise HostDiskFull(
                f"Not creating a sandbox: the disk holding {self.sandboxes_dir} has {free_mb} MiB "
                f"free, below the floor of {self.min_free_disk_mb} MiB "
                "(SANDFORGE_MIN_FREE_DISK_MB). Free some space, for example by deleting "
                "sandboxes you no longer need (`sandforge sandboxes delete <id>`), or lower "
                "the floor."
            )

    async def get(self, sandbox_id: str) -> LocalSandbox:
        if not ids.is_id(sandbox_id, "sandbox"):
            raise SandboxNotFound(f"no sandbox {sandbox_id!r}")
        directory = self.sandboxes_dir / sandbox_id
        try:
            meta = json.loads(await asyncio.to_thread((directory / "meta.json").read_text))
        except FileNotFoundError as exc:
            raise SandboxNotFound(f"no sandbox {sandbox_id!r}; it may have been deleted") from exc
        return LocalSandbox(directory, meta, self.launcher)

    async def list(self, labels: dict[str, str] | None = None) -> list[SandboxInfo]:
        def scan() -> list[tuple[str, dict[str, Any]]]:
            found = []
            for directory in sandbox_dirs(self.sandboxes_dir):
                try:
                    found.append(
                        (directory.name, json.loads((directory / "meta.json").read_text()))
                    )
                except (OSError, ValueError):
                    continue
            return found

        infos = []
        for sandbox_id, meta in await asyncio.to_thread(scan):
            sandbox_labels = meta["spec"]["labels"]
            if labels and any(sandbox_labels.get(k) != v for k, v in labels.items()):
                continue
            running = await self.launcher.is_running(sandbox_id)
            infos.append(
                _info(sandbox_id, meta, SandboxState.STARTED if running else SandboxState.STOPPED)
            )
        return sorted(infos, key=lambda i: i.created_at)

    async def aclose(self) -> None:
        """Nothing to release: the launcher, not the provider, owns the sandboxes' processes."""
