"""Starting and stopping the one long-lived bwrap process of each local sandbox.

`BwrapLauncher` lives in the server. It builds a sandbox's bwrap command line, starts it in
the sandbox's cgroup as the sandbox's own unprivileged host uid, waits for the toolbox daemon
to say it is ready, and tears it all down again: processes, cgroup, disk image mount and
sockets. docs/isolation.md describes each layer of a local sandbox's isolation and why.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import os
import posixpath
import signal
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn, Protocol

from ... import ids
from ...config import default_data_dir, machine_cache_dir
from ..base import (
    HostDiskFull,
    SandboxError,
    SandboxSpec,
    SandboxUnavailable,
    normalize_relative,
)
from . import cgroups, disk
from .command import Spawn, bwrap_argv, link_package_mounts, sandbox_env, unisolated_argv
from .isolation import Isolation, Mode, cgroup_driver, check_isolation, drop_privileges, tool
from .output import SandboxOutput
from .registry import RegistryBridge
from .rootfs import Rootfs
from .slirp import Slirp, start_slirp
from .unix import listen_unix, read_until
from .users import disable_user_namespaces, host_uid, toolbox_host_uid, write_id_maps

READY_TIMEOUT_S = 15.0
CTL_DIR = "ctl"
TOOLBOX_SOCKET = "toolbox.sock"
STOP_GRACE_S = 2.0

# Runs as root for an instant: joins the sandbox's cgroups, then execs the rest of its
# arguments (setpriv ... bwrap ...). Arguments up to `--` are the cgroup.procs files.
_CGROUP_WRAPPER = (
    'while [ "$1" != -- ]; do echo $$ > "$1" || exit 125; shift; done; shift; exec "$@"'
)


class Launcher(Protocol):
    """Starts and stops local sandboxes: BwrapLauncher in the server, RemoteLauncher in workers."""

    async def launch(self, sandbox_dir: Path, spec: SandboxSpec) -> None: ...
    async def terminate(self, sandbox_id: str) -> None: ...
    async def is_running(self, sandbox_id: str) -> bool: ...


@dataclass
class _Running:
    sandbox_dir: Path
    mode: Mode
    proc: asyncio.subprocess.Process | None = None
    slirp: Slirp | None = None
    output: SandboxOutput | None = None
    registry: Path | None = None
    """The package bridge's socket, for a sandbox that reaches the package registries."""


class BwrapLauncher:
    """Owns the sandbox processes; lives in the server."""

    def __init__(
        self,
        allow_unisolated: bool = False,
        isolation: Isolation | None = None,
        registry: RegistryBridge | None = None,
        rootfs: Rootfs | None = None,
    ) -> None:
        self.allow_unisolated = allow_unisolated
        self.registry = registry
        self.rootfs = rootfs or Rootfs(machine_cache_dir("rootfs", default_data_dir() / "rootfs"))
        self._isolation_override = isolation
        self._running: dict[str, _Running] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._watchers: set[asyncio.Task[None]] = set()

    def isolation(self) -> Isolation:
        return self._isolation_override or check_isolation()

    @property
    def isolated(self) -> bool:
        return self.isolation().available

    def mode(self) -> Mode:
        isolation = self.isolation()
        if isolation.available:
            return Mode.FULL
        if not self.allow_unisolated:
            raise SandboxUnavailable(isolation.problem)
        return Mode.NAMESPACES if isolation.namespaces else Mode.NONE

    def _lock(self, sandbox_id: str) -> asyncio.Lock:
        return self._locks.setdefault(sandbox_id, asyncio.Lock())

    async def launch(self, sandbox_dir: Path, spec: SandboxSpec) -> None:
        sandbox_id = sandbox_dir.name
        async with self._lock(sandbox_id):
            running = self._running.get(sandbox_id)
            if running is not None and running.proc is not None and running.proc.returncode is None:
                return
            await self._teardown(sandbox_id)  # whatever a dead run (or a dead server) left
            mode = self.mode()
            egress_problem = self.isolation().egress_problem
            if spec.network == "egress" and mode is not Mode.NONE and egress_problem:
                raise SandboxUnavailable(egress_problem)
            state = _Running(sandbox_dir, mode)
            self._running[sandbox_id] = state
            try:
                await self._start(state, spec)
            except BaseException:
                await self._teardown(sandbox_id)
                raise
            self._watchers.add(asyncio.create_task(self._watch(sandbox_id, state)))

    async def _watch(self, sandbox_id: str, state: _Running) -> None:
        """When a sandbox ends by itself (its daemon died), free its mount and cgroup."""
        assert state.proc is not None
        await state.proc.wait()
        async with self._lock(sandbox_id):
            if self._running.get(sandbox_id) is state:
                await self._teardown(sandbox_id)
        task = asyncio.current_task()
        if task is not None:
            self._watchers.discard(task)

    async def _start(self, state: _Running, spec: SandboxSpec) -> None:
        # The spawns stay on the event loop's thread: --die-with-parent follows the thread
        # that forked bwrap, and a pool thread may exit long before the server does.
        if spec.packages and self.registry is not None and state.mode is not Mode.NONE:
            state.registry = await self.registry.start()
        spawn = await self._prepared(state, spec)
        assert state.output is not None
        try:
            state.proc = await asyncio.create_subprocess_exec(
                *spawn.argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=state.output.write_fd,
                stderr=state.output.write_fd,
                pass_fds=spawn.pass_fds,
                env=spawn.env,
                start_new_session=True,
            )
            spawn.close_child_fds()
            await state.output.start()
            child_pid = await _child_pid(spawn)
            if spawn.info_r >= 0 and child_pid is None:
                await self._fail(state, "failed to start")
            if spawn.block_w >= 0 and child_pid is not None:
                await self._map_users(state, spawn, child_pid)
            try:
                ready = await asyncio.wait_for(read_until(spawn.ready_r, b"\n"), READY_TIMEOUT_S)
            except TimeoutError:
                ready = b""
            if not ready.startswith(b"ready"):
                await self._fail(state, "failed to start")
            if spec.network == "egress" and child_pid is not None:
                # Only now, once the namespace is set up; no command runs before launch()
                # returns, so none sees the network missing.
                await self._start_slirp(state, child_pid)
        finally:
            spawn.close()
            state.output.close_writer()

    async def _prepared(self, state: _Running, spec: SandboxSpec) -> Spawn:
        try:
            return await asyncio.to_thread(self._prepare, state, spec)
        except OSError as exc:
            if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
                raise
            raise HostDiskFull(
                f"sandbox {state.sandbox_dir.name} cannot start: the disk holding "
                f"{state.sandbox_dir.parent} is full ({exc.strerror}). Free some space, for "
                "example by deleting sandboxes you no longer need (`sandforge sandboxes delete "
                "<id>`), and try again."
            ) from exc

    async def _map_users(self, state: _Running, spawn: Spawn, child_pid: int) -> None:
        """Give the waiting bwrap its two users (users.py), then let it go on."""
        sandbox_id = state.sandbox_dir.name
        try:
            await asyncio.to_thread(write_id_maps, child_pid, sandbox_id)
            await disable_user_namespaces(child_pid, tool("nsenter") or "nsenter")
        except (OSError, SandboxError) as exc:
            await self._fail(state, f"could not set up its users ({exc})")
        os.write(spawn.block_w, b"1")

    async def _start_slirp(self, state: _Running, child_pid: int) -> None:
        assert state.output is not None
        prefix: list[str] = []
        if state.mode is Mode.FULL:
            # The owner of the sandbox's user namespace, which slirp4netns has to join.
            sandbox_id = state.sandbox_dir.name
            prefix = [
                *_in_cgroup(cgroup_driver().get(sandbox_id), "sandforge-slirp"),
                *drop_privileges(toolbox_host_uid(sandbox_id)),
            ]
        state.slirp = await start_slirp(child_pid, prefix, state.output.write_fd)
        if not state.slirp.ready:
            await self._fail(state, "could not start slirp4netns for its network")

    async def _fail(self, state: _Running, what: str) -> NoReturn:
        """Stop what started and raise, with what the sandbox's processes had to say."""
        await _stop_processes(state)
        said = await state.output.tail() if state.output is not None else ""
        raise SandboxError(f"sandbox {state.sandbox_dir.name} {what}: {said or 'no output'}")

    def _prepare(self, state: _Running, spec: SandboxSpec) -> Spawn:
        sandbox_dir, sandbox_id = state.sandbox_dir, state.sandbox_dir.name
        state.output = SandboxOutput(sandbox_dir)
        listener = _listen(sandbox_dir / CTL_DIR, TOOLBOX_SOCKET)
        spawn = Spawn([], {}, [listener.detach()])
        try:
            spawn.ready_r, ready_w = spawn.pipe_to_child()
            fds = {"listen": spawn.pass_fds[0], "ready": ready_w}
            if state.mode is Mode.NONE:
                for name in disk.SUBDIRS:
                    (sandbox_dir / name).mkdir(mode=0o700, exist_ok=True)
                link_package_mounts(sandbox_dir / "workspace", spec)
                spawn.argv = unisolated_argv(sandbox_dir, spec, ready_w, fds["listen"])
                spawn.env = sandbox_env(spec, home=str(sandbox_dir / "home"))
                return spawn
            self.rootfs.tree()  # before anything is made: no image, no sandbox
            if spec.network == "egress" or state.mode is Mode.FULL:
                spawn.info_r, fds["info"] = spawn.pipe_to_child()
            if state.mode is Mode.FULL:
                fds["block"], spawn.block_w = os.pipe()
                spawn.pass_fds.append(fds["block"])
                cgroup = cgroup_driver().create(
                    sandbox_id, cgroups.Limits(spec.memory_mb << 20, spec.pids, spec.cpu_weight)
                )
                image = disk.ensure_image(sandbox_dir, spec.disk_mb)
                stage = disk.prepare_stage(sandbox_id)
                disk.mount_image(image, stage, host_uid(sandbox_id))
                dirs = {name: stage / name for name in disk.SUBDIRS}
                disk.make_user_dirs(dirs["workspace"], _mount_parents(spec), host_uid(sandbox_id))
                packages = disk.mount_package_layers(
                    stage, spec.package_mounts, host_uid(sandbox_id)
                )
                prefix = [
                    *_in_cgroup(cgroup, "sandforge-launch"),
                    *drop_privileges(toolbox_host_uid(sandbox_id)),
                ]
            else:
                dirs = {name: sandbox_dir / name for name in disk.SUBDIRS}
                for path in dirs.values():
                    path.mkdir(mode=0o700, exist_ok=True)
                prefix, packages = [], None
            spawn.argv = prefix + bwrap_argv(
                spawn, spec, dirs, fds, self.rootfs, state.registry, packages
            )
            return spawn
        except BaseException:
            spawn.close()
            raise

    async def terminate(self, sandbox_id: str) -> None:
        async with self._lock(sandbox_id):
            await self._teardown(sandbox_id)

    async def _teardown(self, sandbox_id: str) -> None:
        state = self._running.pop(sandbox_id, None)
        if state is not None:
            await _stop_processes(state)
            if state.output is not None:
                state.output.close()
        mode = state.mode if state is not None else self._mode_or_none()
        if mode is Mode.FULL:
            image = state.sandbox_dir / disk.IMAGE_NAME if state is not None else None
            await asyncio.to_thread(_release, sandbox_id, image)
        if state is not None:
            await asyncio.to_thread(_remove_sockets, state.sandbox_dir / CTL_DIR)

    def _mode_or_none(self) -> Mode | None:
        try:
            return self.mode()
        except SandboxUnavailable:
            return None

    async def is_running(self, sandbox_id: str) -> bool:
        state = self._running.get(sandbox_id)
        return state is not None and state.proc is not None and state.proc.returncode is None

    async def close(self) -> None:
        for sandbox_id in list(self._running):
            await self.terminate(sandbox_id)
        if self.registry is not None:
            await self.registry.aclose()
        for task in list(self._watchers):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._mode_or_none() is Mode.FULL:
            await asyncio.to_thread(_prune)

    async def recover(self, sandboxes_dir: Path) -> list[str]:
        """Release what sandboxes of a server that died left behind (mounts, cgroups).

        Their processes died with that server (--die-with-parent), so they read as
        stopped; this frees the rest. Call once at start-up. Returns the ids cleaned.
        """
        if self._mode_or_none() is not Mode.FULL:
            return []
        cleaned = []
        directories = await asyncio.to_thread(sandbox_dirs, sandboxes_dir)
        for directory in directories:
            sandbox_id = directory.name
            if await self.is_running(sandbox_id):
                continue
            stale = await asyncio.to_thread(_is_stale, sandbox_id)
            if stale:
                await asyncio.to_thread(_release, sandbox_id, directory / disk.IMAGE_NAME)
                await asyncio.to_thread(_remove_sockets, directory / CTL_DIR)
                cleaned.append(sandbox_id)
        return cleaned

    # -- for tests and diagnostics --------------------------------------------------------------

    def cgroup_stats(self, sandbox_id: str) -> dict[str, int]:
        return cgroup_driver().get(sandbox_id).stats()

    def cgroup(self, sandbox_id: str) -> cgroups.Cgroup:
        return cgroup_driver().get(sandbox_id)

    def host_pid(self, sandbox_id: str) -> int | None:
        state = self._running.get(sandbox_id)
        return state.proc.pid if state is not None and state.proc is not None else None


async def _stop_processes(state: _Running) -> None:
    proc = state.proc
    if proc is not None and proc.returncode is None and state.mode is not Mode.NONE:
        # Kill bwrap's init, PID 1 inside: the kernel then kills and reaps the whole pid
        # namespace, and the outer bwrap reaps init and exits by itself. Killing the outer
        # bwrap first would leave init to the host's PID 1 to reap.
        await asyncio.to_thread(_kill_children, proc.pid)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(proc.wait(), STOP_GRACE_S)
    if proc is not None and proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        await proc.wait()
    if state.slirp is not None:
        await state.slirp.stop()


async def _child_pid(spawn: Spawn) -> int | None:
    """The host pid of bwrap's child, from what bwrap writes on its info fd."""
    if spawn.info_r < 0:
        return None
    try:
        info = await asyncio.wait_for(read_until(spawn.info_r, b"}"), READY_TIMEOUT_S)
        return int(json.loads(info)["child-pid"])
    except (TimeoutError, ValueError, KeyError, TypeError):
        return None  # bwrap died (or hung) before it said


def _in_cgroup(cgroup: cgroups.Cgroup, name: str) -> list[str]:
    """The command prefix that joins `cgroup` (as root, for an instant) and runs the rest."""
    return ["/bin/sh", "-c", _CGROUP_WRAPPER, name, *(str(p) for p in cgroup.procs_files), "--"]


def _mount_parents(spec: SandboxSpec) -> list[str]:
    parents = {posixpath.dirname(normalize_relative(p)) for p in spec.package_mounts}
    return sorted(p for p in parents if p)


def _listen(ctl: Path, name: str) -> socket.socket:
    ctl.mkdir(mode=0o700, exist_ok=True)
    os.chmod(ctl, 0o700)
    return listen_unix(ctl / name)


def _release(sandbox_id: str, image: Path | None) -> None:
    cgroup = cgroup_driver().get(sandbox_id)
    cgroup.kill_all()
    disk.release(sandbox_id, image)
    cgroup.remove()


def _kill_children(pid: int) -> None:
    """SIGKILL the children of `pid`, each pinned by a pidfd and checked to still be one."""
    try:
        children = [
            int(child)
            for task in Path(f"/proc/{pid}/task").iterdir()
            for child in (task / "children").read_text().split()
        ]
    except OSError:
        return
    for child in children:
        try:
            pidfd = os.pidfd_open(child)
        except OSError:
            continue
        try:
            stat = Path(f"/proc/{child}/stat").read_text()
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                signal.pidfd_send_signal(pidfd, signal.SIGKILL)
        except (OSError, ValueError, IndexError):
            pass
        finally:
            os.close(pidfd)


def sandbox_dirs(sandboxes_dir: Path) -> list[Path]:
    """The directories of local sandboxes under `sandboxes_dir` (named by their ids)."""
    if not sandboxes_dir.is_dir():
        return []
    return sorted(p for p in sandboxes_dir.iterdir() if ids.is_id(p.name, "sandbox"))


def _is_stale(sandbox_id: str) -> bool:
    return cgroup_driver().get(sandbox_id).exists() or disk.stage_dir(sandbox_id).exists()


def _prune() -> None:
    cgroup_driver().prune()
    with contextlib.suppress(OSError):
        disk.STAGE_ROOT.rmdir()


def _remove_sockets(ctl: Path) -> None:
    for path in [ctl / TOOLBOX_SOCKET, *ctl.glob("ports/*.sock")]:
        with contextlib.suppress(OSError):
            path.unlink()
