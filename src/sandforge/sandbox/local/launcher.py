"""Starting and stopping the one long-lived bwrap process of each local sandbox.

bwrap runs with --die-with-parent, so whoever starts it owns the sandbox's life.
That must be the server, not a generation's child process, or every preview
would die with the run that made it. Children therefore ask the server through
a control socket (`RemoteLauncher`); the server starts bwrap itself
(`BwrapLauncher`), and when the server exits no sandbox process is left behind.

How one sandbox starts (the server runs as root; see `Mode` for the fallbacks):

1. Its cgroup is created with the spec's limits (cgroups.py), its ext4 image is
   mounted on /run/sandforge/<id> (disk.py), and the host creates the toolbox's
   listening socket in `<sandbox dir>/ctl/`, a directory the sandbox never sees.
2. `/bin/sh` writes its own pid into the cgroup's `cgroup.procs`, then execs
   `setpriv`, which drops to the sandbox's own unprivileged host uid (one per sandbox,
   from a range no real account uses) with no capabilities, no supplementary groups
   and no_new_privs, and execs bwrap. So bwrap and everything under it is limited from
   its first instruction, and a process that got out of every namespace would still be
   an unprivileged user that owns nothing on the host.
3. bwrap: --unshare-all (user, pid, net, ipc, uts, cgroup namespaces) with nested user
   namespaces disabled, --new-session, --clearenv, --die-with-parent, uid 1000 inside,
   every capability dropped, a seccomp filter (seccomp.py), read-only /usr, a root that
   is remounted read-only, a size-limited private /tmp, and the image's workspace/,
   home/ and run/ as /workspace, /home/user and /run/sandforge. /etc holds only
   passwd, group, hosts, nsswitch.conf (and resolv.conf with egress), written from
   memory, plus the system's TLS certificates. Nothing of the host's environment
   enters: bwrap itself is started with an empty environment.
4. bwrap's own init is PID 1 and reaps orphans, so a command that daemonizes never
   leaves zombies; the toolbox daemon is PID 2 and the sandbox ends when it does. The
   daemon gets the listening socket's fd and says "ready" on a pipe.
5. With `network="egress"`, slirp4netns (in the sandbox's cgroup, as the sandbox's uid,
   in its own mount namespace with seccomp) gives the network namespace a tap device, a
   default route and DNS at 10.0.2.3, with --disable-host-loopback so 10.0.2.2 never
   reaches the host's 127.0.0.1. Without it the namespace has loopback only.
   slirp4netns connects from the host's own network namespace, so a service the host
   binds on another of its addresses (0.0.0.0, its LAN address) or a cloud metadata
   endpoint stays reachable from an egress sandbox. To close that, firewall the
   sandbox uid range, which slirp4netns runs as, e.g.
   `iptables -A OUTPUT -m owner --uid-owner 1000000000-1016777215 -m addrtype
   --dst-type LOCAL -j REJECT` (plus private and link-local ranges as needed).

Stopping SIGKILLs bwrap's init; the kernel then kills and reaps the whole pid
namespace, however its processes daemonized or re-sessioned, and the outer bwrap
exits. slirp4netns is killed, the cgroup emptied (anything left is killed) and
removed, and the image unmounted, so the files stay in the image for the next start.
If the server itself dies, --die-with-parent takes bwrap down the same way and the
exit fd takes slirp4netns; `recover()` at the next start-up frees the mounts and
cgroups left behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import errno
import fcntl
import functools
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ...errors import SandforgeError
from .. import wire
from ..base import (
    HostDiskFull,
    SandboxError,
    SandboxSpec,
    SandboxUnavailable,
    check_reply,
    normalize_relative,
)
from . import cgroups, disk, seccomp
from .unix import listen_unix

PROJECT_DIR = "/workspace"
HOME_DIR = "/home/user"
RUN_DIR = "/run/sandforge"
TOOLBOX_PATH = "/opt/sandforge/toolbox.py"
WIRE_PATH = "/opt/sandforge/sandforge_wire.py"
SANDBOX_UID = 1000
HOST_UID_BASE = 1_000_000_000
HOST_UID_RANGE = 1 << 24
PROBE_UID = HOST_UID_BASE + HOST_UID_RANGE
READY_TIMEOUT_S = 15.0
SANDBOX_PATH = "/usr/local/bin:/usr/bin:/bin"
CTL_DIR = "ctl"
TOOLBOX_SOCKET = "toolbox.sock"
SLIRP_MTU = 65520
SLIRP_DNS = "10.0.2.3"
LOG_NAME = "sandbox.log"
STOP_GRACE_S = 2.0

CONTROL_MESSAGE_BYTES = 1 << 20

log = logging.getLogger(__name__)

_NS_GET_USERNS = 0xB701

# Runs as root for an instant: joins the sandbox's cgroups, then execs the rest of its
# arguments (setpriv ... bwrap ...). Arguments up to `--` are the cgroup.procs files.
_CGROUP_WRAPPER = (
    'while [ "$1" != -- ]; do echo $$ > "$1" || exit 125; shift; done; shift; exec "$@"'
)


def host_uid(sandbox_id: str) -> int:
    """The host uid a sandbox's processes run as: its own, from an unused range."""
    return HOST_UID_BASE + int(sandbox_id[2:], 16) % HOST_UID_RANGE


class Launcher(Protocol):
    async def launch(self, sandbox_dir: Path, spec: SandboxSpec) -> None: ...
    async def terminate(self, sandbox_id: str) -> None: ...
    async def is_running(self, sandbox_id: str) -> bool: ...


# -- what this machine can do -------------------------------------------------------------------


@dataclass(frozen=True)
class Isolation:
    """Whether sandboxes get full isolation here, and if not, why and how to fix it.

    `available` means namespaces *and* limits (cgroups, disk images). `namespaces` alone
    is what SANDFORGE_ALLOW_UNISOLATED=1 falls back to when limits cannot be enforced.
    """

    available: bool
    problem: str = ""
    namespaces: bool = False
    egress_problem: str = ""


_UNISOLATED_HINT = "or set SANDFORGE_ALLOW_UNISOLATED=1 to run sandboxes without isolation"


def _tool(name: str) -> str | None:
    return shutil.which(name) or next(
        (p for p in (f"/usr/bin/{name}", f"/usr/sbin/{name}", f"/bin/{name}") if Path(p).exists()),
        None,
    )


def _drop_privileges(uid: int) -> list[str]:
    setpriv = _tool("setpriv") or "setpriv"
    return [
        setpriv,
        f"--reuid={uid}",
        f"--regid={uid}",
        "--clear-groups",
        "--bounding-set=-all",
        "--no-new-privs",
        "--",
    ]


def probe_isolation(bwrap: str | None = None) -> Isolation:
    """Check bwrap, user namespaces, cgroups and disk images; uncached (see check_isolation)."""
    bwrap = bwrap or _tool("bwrap")
    if bwrap is None or not Path(bwrap).exists():
        return Isolation(
            False,
            "bubblewrap (bwrap) is not installed: run `apt-get install bubblewrap`, "
            + _UNISOLATED_HINT,
        )
    root = os.geteuid() == 0
    if root and _tool("setpriv") is None:
        return Isolation(
            False, "setpriv is not installed: run `apt-get install util-linux`, " + _UNISOLATED_HINT
        )
    argv = [
        bwrap,
        "--unshare-all",
        "--unshare-user",
        "--disable-userns",
        "--die-with-parent",
        "--ro-bind",
        "/usr",
        "/usr",
        *_system_links(),
        "--",
        "/usr/bin/true",
    ]
    if root:
        argv = _drop_privileges(PROBE_UID) + argv
    try:
        probe = subprocess.run(
            argv, capture_output=True, text=True, check=False, timeout=30, env={}
        )
        failed, detail = probe.returncode != 0, probe.stderr.strip()
    except (OSError, subprocess.TimeoutExpired) as exc:
        failed, detail = True, str(exc)
    if failed:
        return Isolation(
            False,
            f"bwrap cannot create namespaces here ({detail}): enable unprivileged user "
            "namespaces with `sysctl -w kernel.unprivileged_userns_clone=1` and "
            "`sysctl -w user.max_user_namespaces=10000` (and, on Ubuntu, "
            "`sysctl -w kernel.apparmor_restrict_unprivileged_userns=0`), " + _UNISOLATED_HINT,
        )
    egress_problem = ""
    if _tool("slirp4netns") is None or _tool("nsenter") is None:
        egress_problem = (
            "network egress needs slirp4netns: run `apt-get install slirp4netns` "
            "(nsenter comes with util-linux)"
        )
    limits_problem = disk.available()
    if limits_problem is None:
        driver = cgroups.detect()
        if isinstance(driver, str):
            limits_problem = driver
    if limits_problem is not None:
        return Isolation(
            False,
            f"sandbox limits cannot be enforced here: {limits_problem}; "
            "or set SANDFORGE_ALLOW_UNISOLATED=1 to run sandboxes without limits",
            namespaces=True,
            egress_problem=egress_problem,
        )
    return Isolation(True, namespaces=True, egress_problem=egress_problem)


@functools.cache
def check_isolation() -> Isolation:
    return probe_isolation()


@functools.cache
def _cgroup_driver() -> cgroups.CgroupDriver:
    driver = cgroups.detect()
    if isinstance(driver, str):
        raise SandboxUnavailable(f"sandbox limits cannot be enforced here: {driver}")
    return driver


class Mode(enum.Enum):
    FULL = "full"
    """bwrap, the sandbox's own uid, cgroup limits, a disk image. `isolated` is True."""
    NAMESPACES = "namespaces"
    """SANDFORGE_ALLOW_UNISOLATED=1 and limits unavailable: bwrap as the server's uid,
    plain directories, no cgroups."""
    NONE = "none"
    """SANDFORGE_ALLOW_UNISOLATED=1 and bwrap unavailable: the daemon runs on the host."""


# -- the sandbox's command line -----------------------------------------------------------------


def _sandbox_python() -> tuple[str, list[str]]:
    """A Python inside the sandbox, and the bwrap args that make it visible."""
    if Path("/usr/bin/python3").exists():
        return "/usr/bin/python3", []
    prefix = sys.base_prefix
    return str(Path(prefix) / "bin" / "python3"), ["--ro-bind", prefix, prefix]


def _system_links() -> list[str]:
    links = []
    for name in ("bin", "sbin", "lib", "lib64", "lib32"):
        if Path("/usr", name).is_dir():
            links += ["--symlink", f"usr/{name}", f"/{name}"]
    return links


def sandbox_env(spec: SandboxSpec, home: str = HOME_DIR) -> dict[str, str]:
    """The whole environment of a sandbox: a minimal base plus the spec's own vars."""
    return {"PATH": SANDBOX_PATH, "HOME": home, "LANG": "C.UTF-8", **spec.env}


def _etc_files(spec: SandboxSpec) -> dict[str, bytes]:
    files = {
        "/etc/passwd": (
            "root:x:0:0::/root:/bin/sh\n"
            f"user:x:{SANDBOX_UID}:{SANDBOX_UID}::{HOME_DIR}:/bin/sh\n"
            "nobody:x:65534:65534::/nonexistent:/usr/sbin/nologin\n"
        ),
        "/etc/group": f"root:x:0:\nuser:x:{SANDBOX_UID}:\nnogroup:x:65534:\n",
        "/etc/hosts": "127.0.0.1 localhost sandbox\n::1 localhost ip6-localhost ip6-loopback\n",
        "/etc/nsswitch.conf": "passwd: files\ngroup: files\nhosts: files dns\n",
    }
    if spec.network == "egress":
        files["/etc/resolv.conf"] = f"nameserver {SLIRP_DNS}\n"
    return {path: text.encode() for path, text in files.items()}


def _memfd(name: str, data: bytes) -> int:
    fd = os.memfd_create(name)
    os.write(fd, data)
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


_TOOLBOX_FILE = Path(__file__).with_name("toolbox.py")
_WIRE_FILE = Path(wire.__file__)


@functools.cache
def _source(path: Path) -> bytes:
    return path.read_bytes()


def _daemon_args(
    spec: SandboxSpec, root: str, run_dir: str, listen_fd: int, ready_fd: int, wire_path: str
) -> list[str]:
    return [
        "--wire",
        wire_path,
        "--root",
        root,
        "--run-dir",
        run_dir,
        "--listen-fd",
        str(listen_fd),
        "--ready-fd",
        str(ready_fd),
        "--output-cap",
        str(spec.output_cap_bytes),
        "--max-file-bytes",
        str(spec.max_file_bytes),
        "--fsize-limit",
        str(spec.disk_mb << 20),
    ]


@dataclass
class _Spawn:
    """A prepared start: the command line, and the fds it needs (closed here once spawned)."""

    argv: list[str]
    env: dict[str, str]
    pass_fds: list[int] = field(default_factory=list)
    ready_r: int = -1
    info_r: int = -1

    def close_child_fds(self) -> None:
        for fd in self.pass_fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        self.pass_fds = []

    def close(self) -> None:
        self.close_child_fds()
        for fd in (self.ready_r, self.info_r):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self.ready_r = self.info_r = -1


def _bwrap_argv(
    spawn: _Spawn,
    spec: SandboxSpec,
    dirs: dict[str, Path],
    listen_fd: int,
    ready_fd: int,
    info_fd: int,
) -> list[str]:
    python, python_binds = _sandbox_python()
    argv = [
        _tool("bwrap") or "bwrap",
        "--unshare-all",
        "--unshare-user",
        "--disable-userns",
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
        *_system_links(),
    ]
    for path in ("/etc/alternatives", "/etc/ssl", "/etc/ca-certificates", "/etc/localtime"):
        argv += ["--ro-bind-try", path, path]
    for path, data in _etc_files(spec).items():
        fd = _memfd(Path(path).name, data)
        spawn.pass_fds.append(fd)
        argv += ["--ro-bind-data", str(fd), path]
    argv += [
        "--proc",
        "/proc",
        "--dev",
        "/dev",
        "--size",
        str(spec.tmp_mb << 20),
        "--tmpfs",
        "/tmp",
        "--bind",
        str(dirs["workspace"]),
        PROJECT_DIR,
        "--bind",
        str(dirs["home"]),
        HOME_DIR,
        "--bind",
        str(dirs["run"]),
        RUN_DIR,
    ]
    for relative, host_dir in spec.readonly_mounts.items():
        argv += ["--ro-bind", host_dir, f"{PROJECT_DIR}/{normalize_relative(relative)}"]
    for path, source in ((TOOLBOX_PATH, _TOOLBOX_FILE), (WIRE_PATH, _WIRE_FILE)):
        fd = _memfd(source.name, _source(source))
        spawn.pass_fds.append(fd)
        argv += ["--ro-bind-data", str(fd), path]
    argv += [*python_binds, "--remount-ro", "/"]
    program = seccomp.program()
    if program is not None:
        seccomp_fd = _memfd("seccomp", program)
        spawn.pass_fds.append(seccomp_fd)
        argv += ["--seccomp", str(seccomp_fd)]
    if info_fd >= 0:
        argv += ["--info-fd", str(info_fd)]
    argv += ["--chdir", PROJECT_DIR, "--cap-drop", "ALL"]
    for key, value in sandbox_env(spec).items():
        argv += ["--setenv", key, value]
    argv += [python, "-I", "-S", TOOLBOX_PATH]
    argv += _daemon_args(spec, PROJECT_DIR, RUN_DIR, listen_fd, ready_fd, WIRE_PATH)
    return argv


def bwrap_argv(sandbox_dir: Path, spec: SandboxSpec, ready_fd: int) -> list[str]:
    """The bwrap command line of a sandbox (for inspection; the launcher adds the fds)."""
    spawn = _Spawn([], {})
    dirs = {name: sandbox_dir / name for name in disk.SUBDIRS}
    try:
        return _bwrap_argv(spawn, spec, dirs, 3, ready_fd, -1)
    finally:
        spawn.close()


def _link_readonly_mounts(workspace: Path, spec: SandboxSpec) -> None:
    """Without namespaces nothing can be mounted: a symlink stands in (the code is trusted)."""
    for relative, host_dir in spec.readonly_mounts.items():
        link = workspace / normalize_relative(relative)
        if not link.is_symlink() and not link.exists():
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(host_dir)


def unisolated_argv(
    sandbox_dir: Path, spec: SandboxSpec, ready_fd: int, listen_fd: int = 3
) -> list[str]:
    return [
        sys.executable,
        "-I",
        "-S",
        str(_TOOLBOX_FILE),
        *_daemon_args(
            spec,
            str(sandbox_dir / "workspace"),
            str(sandbox_dir / "run"),
            listen_fd,
            ready_fd,
            str(_WIRE_FILE),
        ),
    ]


# -- the launcher -------------------------------------------------------------------------------


@dataclass
class _Running:
    sandbox_dir: Path
    mode: Mode
    proc: asyncio.subprocess.Process | None = None
    slirp: asyncio.subprocess.Process | None = None
    slirp_exit_fd: int = -1
    log_fd: int = -1


class BwrapLauncher:
    """Owns the sandbox processes; lives in the server."""

    def __init__(self, allow_unisolated: bool = False, isolation: Isolation | None = None) -> None:
        self.allow_unisolated = allow_unisolated
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
        try:
            spawn = await asyncio.to_thread(self._prepare, state, spec)
        except OSError as exc:
            if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
                raise
            raise HostDiskFull(
                f"sandbox {state.sandbox_dir.name} cannot start: the disk holding "
                f"{state.sandbox_dir.parent} is full ({exc.strerror}). Free some space, for "
                "example by deleting sandboxes you no longer need (`sandforge sandboxes delete "
                "<id>`), and try again."
            ) from exc
        try:
            state.proc = await asyncio.create_subprocess_exec(
                *spawn.argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=state.log_fd,
                stderr=state.log_fd,
                pass_fds=spawn.pass_fds,
                env=spawn.env,
                start_new_session=True,
            )
            spawn.close_child_fds()
            try:
                ready = await asyncio.wait_for(
                    _read_fd(spawn.ready_r, until=b"\n"), READY_TIMEOUT_S
                )
            except TimeoutError:
                ready = b""
            if not ready.startswith(b"ready"):
                log = await asyncio.to_thread((state.sandbox_dir / LOG_NAME).read_bytes)
                raise SandboxError(
                    f"sandbox {state.sandbox_dir.name} failed to start: "
                    + (log[-2000:].decode(errors="replace").strip() or "no output")
                )
            if spawn.info_r >= 0:
                # Only now: bwrap writes the user namespace's uid map after it reports the
                # child's pid, and slirp4netns must join a namespace that is set up. No
                # command runs before launch() returns, so none sees the network missing.
                info = await asyncio.wait_for(_read_fd(spawn.info_r, until=b"}"), READY_TIMEOUT_S)
                await self._start_slirp(state, int(json.loads(info)["child-pid"]))
        finally:
            spawn.close()

    def _prepare(self, state: _Running, spec: SandboxSpec) -> _Spawn:
        sandbox_dir, sandbox_id = state.sandbox_dir, state.sandbox_dir.name
        if state.log_fd < 0:
            state.log_fd = os.open(
                sandbox_dir / LOG_NAME,
                os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC,
                0o600,
            )
        listener = _listen(sandbox_dir / CTL_DIR, TOOLBOX_SOCKET)
        spawn = _Spawn([], {}, [listener.detach()])
        try:
            ready_r, ready_w = os.pipe()
            spawn.ready_r = ready_r
            spawn.pass_fds.append(ready_w)
            listen_fd = spawn.pass_fds[0]
            if state.mode is Mode.NONE:
                for name in disk.SUBDIRS:
                    (sandbox_dir / name).mkdir(mode=0o700, exist_ok=True)
                _link_readonly_mounts(sandbox_dir / "workspace", spec)
                spawn.argv = unisolated_argv(sandbox_dir, spec, ready_w, listen_fd)
                spawn.env = sandbox_env(spec, home=str(sandbox_dir / "home"))
                return spawn
            info_w = -1
            if spec.network == "egress":
                spawn.info_r, info_w = os.pipe()
                spawn.pass_fds.append(info_w)
            if state.mode is Mode.FULL:
                uid = host_uid(sandbox_id)
                cgroup = _cgroup_driver().create(
                    sandbox_id, cgroups.Limits(spec.memory_mb << 20, spec.pids, spec.cpu_weight)
                )
                image = disk.ensure_image(sandbox_dir, spec.disk_mb)
                stage = disk.prepare_stage(sandbox_id)
                disk.mount_image(image, stage, uid)
                dirs = {name: stage / name for name in disk.SUBDIRS}
                prefix = [
                    "/bin/sh",
                    "-c",
                    _CGROUP_WRAPPER,
                    "sandforge-launch",
                    *(str(p) for p in cgroup.procs_files),
                    "--",
                    *_drop_privileges(uid),
                ]
            else:
                dirs = {name: sandbox_dir / name for name in disk.SUBDIRS}
                for path in dirs.values():
                    path.mkdir(mode=0o700, exist_ok=True)
                prefix = []
            spawn.argv = prefix + _bwrap_argv(spawn, spec, dirs, listen_fd, ready_w, info_w)
            return spawn
        except BaseException:
            spawn.close()
            raise

    async def _start_slirp(self, state: _Running, child_pid: int) -> None:
        net_fd = os.open(f"/proc/{child_pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        fds = [net_fd]
        try:
            owner_fd = fcntl.ioctl(net_fd, _NS_GET_USERNS)
            fds.append(owner_fd)
            ready_r, ready_w = os.pipe()
            exit_r, exit_w = os.pipe()
            fds += [ready_w, exit_r]
            state.slirp_exit_fd = exit_w
            userns = f"/proc/self/fd/{owner_fd}"
            argv = [
                _tool("nsenter") or "nsenter",
                f"--user={userns}",
                "--preserve-credentials",
                "--",
                _tool("slirp4netns") or "slirp4netns",
                "--configure",
                f"--mtu={SLIRP_MTU}",
                "--disable-host-loopback",
                "--enable-sandbox",
                "--enable-seccomp",
                f"--ready-fd={ready_w}",
                f"--exit-fd={exit_r}",
                f"--userns-path={userns}",
                "--netns-type=path",
                f"/proc/self/fd/{net_fd}",
                "tap0",
            ]
            if state.mode is Mode.FULL:
                sandbox_id = state.sandbox_dir.name
                cgroup = _cgroup_driver().get(sandbox_id)
                argv = [
                    "/bin/sh",
                    "-c",
                    _CGROUP_WRAPPER,
                    "sandforge-slirp",
                    *(str(p) for p in cgroup.procs_files),
                    "--",
                    *_drop_privileges(host_uid(sandbox_id)),
                    *argv,
                ]
            state.slirp = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=state.log_fd,
                stderr=state.log_fd,
                pass_fds=fds,
                env={},
                start_new_session=True,
            )
        finally:
            for fd in fds:
                os.close(fd)
        try:
            ready = await asyncio.wait_for(_read_fd(ready_r, until=b"1"), READY_TIMEOUT_S)
        finally:
            os.close(ready_r)
        if ready != b"1":
            log = await asyncio.to_thread((state.sandbox_dir / LOG_NAME).read_bytes)
            raise SandboxError(
                f"sandbox {state.sandbox_dir.name}: slirp4netns failed to start: "
                + log[-2000:].decode(errors="replace").strip()
            )

    async def terminate(self, sandbox_id: str) -> None:
        async with self._lock(sandbox_id):
            await self._teardown(sandbox_id)

    async def _teardown(self, sandbox_id: str) -> None:
        state = self._running.pop(sandbox_id, None)
        if state is not None:
            proc = state.proc
            if proc is not None and proc.returncode is None and state.mode is not Mode.NONE:
                # Kill bwrap's init, PID 1 inside: the kernel then kills and reaps the whole
                # pid namespace, and the outer bwrap reaps init and exits by itself. Killing
                # the outer bwrap first would leave init to the host's PID 1 to reap.
                await asyncio.to_thread(_kill_children, proc.pid)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(proc.wait(), STOP_GRACE_S)
            for proc in (state.proc, state.slirp):
                if proc is not None and proc.returncode is None:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(proc.pid, signal.SIGKILL)
                    await proc.wait()
            for fd in (state.slirp_exit_fd, state.log_fd):
                if fd >= 0:
                    os.close(fd)
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
        directories = await asyncio.to_thread(_sandbox_dirs, sandboxes_dir)
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
        return _cgroup_driver().get(sandbox_id).stats()

    def cgroup(self, sandbox_id: str) -> cgroups.Cgroup:
        return _cgroup_driver().get(sandbox_id)

    def host_pid(self, sandbox_id: str) -> int | None:
        state = self._running.get(sandbox_id)
        return state.proc.pid if state is not None and state.proc is not None else None


def _listen(ctl: Path, name: str) -> socket.socket:
    ctl.mkdir(mode=0o700, exist_ok=True)
    os.chmod(ctl, 0o700)
    return listen_unix(ctl / name)


def _release(sandbox_id: str, image: Path | None) -> None:
    cgroup = _cgroup_driver().get(sandbox_id)
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


def _sandbox_dirs(sandboxes_dir: Path) -> list[Path]:
    return sorted(sandboxes_dir.glob("sb*")) if sandboxes_dir.is_dir() else []


def _is_stale(sandbox_id: str) -> bool:
    return _cgroup_driver().get(sandbox_id).exists() or disk.stage_dir(sandbox_id).exists()


def _prune() -> None:
    _cgroup_driver().prune()
    with contextlib.suppress(OSError):
        disk.STAGE_ROOT.rmdir()


def _remove_sockets(ctl: Path) -> None:
    for path in [ctl / TOOLBOX_SOCKET, *ctl.glob("ports/*.sock")]:
        with contextlib.suppress(OSError):
            path.unlink()


async def _read_fd(fd: int, until: bytes) -> bytes:
    """Read from a pipe until `until` appears or the writers are gone."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    pipe = os.fdopen(os.dup(fd), "rb", buffering=0)
    transport, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), pipe)
    data = b""
    try:
        while until not in data:
            chunk = await reader.read(4096)
            if not chunk:
                break
            data += chunk
        return data
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
            self._server = await asyncio.start_unix_server(
                self._handle, path=str(self.socket_path), limit=CONTROL_MESSAGE_BYTES + 1
            )
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
            try:
                reply = await self._serve(await wire.read(reader, CONTROL_MESSAGE_BYTES))
            except (SandforgeError, wire.Failure) as exc:
                reply = wire.error(exc.code, exc.message)
            except Exception as exc:
                # The worker that asked must hear why, not see the connection drop.
                log.exception("the sandbox control socket failed a request")
                reply = wire.error("internal", f"the sandbox launcher failed: {exc!r}")
            writer.write(wire.encode(reply))
            await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    async def _serve(self, request: wire.Message) -> wire.Message:
        sandbox_id = str(request.get("sandbox_id"))
        if "/" in sandbox_id or sandbox_id.startswith("."):
            raise SandboxError(f"bad sandbox id {sandbox_id!r}")
        op = request.get("op")
        if op == "launch":
            try:
                spec = SandboxSpec(**request["spec"])
            except (KeyError, TypeError, ValueError) as exc:
                raise SandboxError(f"bad sandbox spec: {exc}") from exc
            await self.launcher.launch(self.sandboxes_dir / sandbox_id, spec)
            return wire.ok()
        if op == "terminate":
            await self.launcher.terminate(sandbox_id)
            return wire.ok()
        if op == "is_running":
            return wire.ok(running=await self.launcher.is_running(sandbox_id))
        raise SandboxError(f"the sandbox control socket has no operation {op!r}")


class RemoteLauncher:
    """A Launcher that asks the server's ControlServer; used inside generation workers."""

    def __init__(self, socket_path: Path) -> None:
        self.socket_path = socket_path

    async def _call(self, op: str, **params: Any) -> wire.Message:
        try:
            reader, writer = await asyncio.open_unix_connection(
                str(self.socket_path), limit=CONTROL_MESSAGE_BYTES + 1
            )
        except OSError as exc:
            raise SandboxUnavailable(
                f"the sandforge server's sandbox control socket {self.socket_path} is not answering"
            ) from exc
        try:
            writer.write(wire.encode(wire.request(op, **params)))
            await writer.drain()
            reply = await wire.read(reader, CONTROL_MESSAGE_BYTES)
        except wire.Failure as exc:
            raise SandboxError(f"the sandbox control socket sent no proper reply: {exc}") from exc
        finally:
            writer.close()
        return check_reply(reply)

    async def launch(self, sandbox_dir: Path, spec: SandboxSpec) -> None:
        await self._call("launch", sandbox_id=sandbox_dir.name, spec=asdict(spec))

    async def terminate(self, sandbox_id: str) -> None:
        await self._call("terminate", sandbox_id=sandbox_id)

    async def is_running(self, sandbox_id: str) -> bool:
        return bool((await self._call("is_running", sandbox_id=sandbox_id))["running"])
