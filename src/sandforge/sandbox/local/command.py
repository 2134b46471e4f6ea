"""What a local sandbox is made of, as command lines: bwrap's and the toolbox daemon's.

The bwrap command line holds the sandbox's whole view of the world: the sandbox image's
read-only system dirs (rootfs.py), a private /tmp, the disk image's dirs, /etc written from
memory, the daemon's code bound read-only from memory, the seccomp filter, and an
environment of PATH, HOME, LANG and the spec's own variables only. docs/isolation.md
explains each choice.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from .. import wire
from ..base import SKIPPED_DIRS, SandboxSpec, normalize_relative
from . import seccomp
from .isolation import tool
from .registry import REGISTRY_ENV, REGISTRY_PORT, REGISTRY_SOCKET
from .rootfs import Rootfs
from .slirp import SLIRP_DNS
from .users import SANDBOX_UID

PROJECT_DIR = "/workspace"
HOME_DIR = "/home/user"
RUN_DIR = "/run/sandforge"
DAEMON_DIR = "/opt/sandforge"
SANDBOX_PATH = "/usr/local/bin:/usr/bin:/bin"
SANDBOX_PYTHON = "/usr/bin/python3"

# Inside the sandbox the daemon's files sit side by side; on the host wire.py is shared
# with the rest of sandforge, one package up.
_DAEMON_FILES = {
    "toolbox.py": Path(__file__).with_name("toolbox.py"),
    "toolbox_files.py": Path(__file__).with_name("toolbox_files.py"),
    "toolbox_bridge.py": Path(__file__).with_name("toolbox_bridge.py"),
    "sandforge_wire.py": Path(wire.__file__),
}
TOOLBOX_PATH = f"{DAEMON_DIR}/toolbox.py"
SHIM_DIR = f"{DAEMON_DIR}/bin"
_PIP_SHIM = Path(__file__).with_name("pip_shim.py")
"""`pip` that also records what it installs in requirements.txt (with the package bridge)."""
WIRE_PATH = f"{DAEMON_DIR}/sandforge_wire.py"

TOOLBOX_CAPABILITIES = ("CAP_SETUID", "CAP_SETGID", "CAP_KILL", "CAP_SETPCAP")
"""What the daemon starts with: it runs commands as another uid and signals them, and drops
CAP_SETPCAP (and everyone's bounding set) before it serves (toolbox.py)."""


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
        # A folder's name never holds a "/": the one separator that needs no escaping.
        "--skip-dirs",
        "/".join(sorted(SKIPPED_DIRS)),
    ]


@dataclass
class Spawn:
    """A prepared start: the command line, and the fds it needs (closed here once spawned).

    `info_r` reads bwrap's JSON about its child; `block_w` releases bwrap once the launcher
    has mapped the sandbox's users (full isolation only).
    """

    argv: list[str]
    env: dict[str, str]
    pass_fds: list[int] = field(default_factory=list)
    ready_r: int = -1
    info_r: int = -1
    block_w: int = -1

    def pipe_to_child(self) -> tuple[int, int]:
        """A pipe whose write end the child gets; (read end, the child's fd number)."""
        read_fd, write_fd = os.pipe()
        self.pass_fds.append(write_fd)
        return read_fd, write_fd

    def close_child_fds(self) -> None:
        for fd in self.pass_fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        self.pass_fds = []

    def close(self) -> None:
        self.close_child_fds()
        for fd in (self.ready_r, self.info_r, self.block_w):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self.ready_r = self.info_r = self.block_w = -1


def _user_args(block_fd: int) -> list[str]:
    if block_fd < 0:
        # One uid for everything: bwrap maps it itself and forbids nested namespaces.
        uid = str(SANDBOX_UID)
        return ["--disable-userns", "--uid", uid, "--gid", uid, "--cap-drop", "ALL"]
    capabilities = [arg for cap in TOOLBOX_CAPABILITIES for arg in ("--cap-add", cap)]
    return [
        "--userns-block-fd",
        str(block_fd),
        "--assert-userns-disabled",
        "--cap-drop",
        "ALL",
        *capabilities,
    ]


def _filesystem_args(
    spawn: Spawn,
    spec: SandboxSpec,
    dirs: dict[str, Path],
    rootfs: Rootfs,
    registry: Path | None,
    packages: dict[str, str] | None,
) -> list[str]:
    # bwrap makes what it creates its setup user's (the daemon's, under full isolation), and
    # the parents of a mount 0700: every dir and file commands must reach gets its mode here.
    argv = []
    for parent in ("/etc", "/home", "/run", "/opt", DAEMON_DIR):
        argv += ["--perms", "0755", "--dir", parent]
    # Nothing of the host's /usr or /opt: the image's system dirs, and /opt holds only the
    # daemon.
    argv += rootfs.system_args()
    files = {**_etc_files(spec)}
    files.update({f"{DAEMON_DIR}/{name}": _source(path) for name, path in _DAEMON_FILES.items()})
    for path, data in files.items():
        fd = _memfd(Path(path).name, data)
        spawn.pass_fds.append(fd)
        argv += ["--perms", "0444", "--ro-bind-data", str(fd), path]
    argv += ["--proc", "/proc", "--dev", "/dev"]
    argv += ["--perms", "01777", "--size", str(spec.tmp_mb << 20), "--tmpfs", "/tmp"]
    for name, target in (("workspace", PROJECT_DIR), ("home", HOME_DIR), ("run", RUN_DIR)):
        argv += ["--bind", str(dirs[name]), target]
    packages = packages if packages is not None else spec.package_mounts
    for relative, host_dir in packages.items():
        bind = "--ro-bind" if packages is spec.package_mounts else "--bind"
        argv += [bind, host_dir, f"{PROJECT_DIR}/{normalize_relative(relative)}"]
    if registry is not None:
        argv += ["--ro-bind", str(registry), REGISTRY_SOCKET]
        argv += ["--perms", "0755", "--dir", SHIM_DIR]
        for name in ("pip", "pip3"):
            fd = _memfd(name, _source(_PIP_SHIM))
            spawn.pass_fds.append(fd)
            argv += ["--perms", "0555", "--ro-bind-data", str(fd), f"{SHIM_DIR}/{name}"]
    return argv


def bwrap_argv(
    spawn: Spawn,
    spec: SandboxSpec,
    dirs: dict[str, Path],
    fds: dict[str, int],
    rootfs: Rootfs,
    registry: Path | None = None,
    packages: dict[str, str] | None = None,
) -> list[str]:
    """bwrap's command line; `fds` names the child's listen, ready, info and block fds,
    `rootfs` the sandbox image and `registry` the package bridge's socket (None: no bridge).
    `packages` maps project paths to the writable overlays of the package caches; without
    it the caches themselves (`spec.package_mounts`) are bound read-only.

    With a block fd (full isolation) the daemon is root of the sandbox's user namespace and
    runs commands as SANDBOX_UID; without one, everything runs as SANDBOX_UID.
    """
    argv = [
        tool("bwrap") or "bwrap",
        "--unshare-all",
        "--unshare-user",
        "--die-with-parent",
        "--new-session",
        "--clearenv",
        "--hostname",
        "sandbox",
        *_user_args(fds.get("block", -1)),
        *_filesystem_args(spawn, spec, dirs, rootfs, registry, packages),
        "--remount-ro",
        "/",
    ]
    program = seccomp.program()
    if program is not None:
        seccomp_fd = _memfd("seccomp", program)
        spawn.pass_fds.append(seccomp_fd)
        argv += ["--seccomp", str(seccomp_fd)]
    if fds.get("info", -1) >= 0:
        argv += ["--info-fd", str(fds["info"])]
    # Not the project dir: the daemon holds no capability to enter the commands' 0700 dirs.
    argv += ["--chdir", "/"]
    env = sandbox_env(spec)
    if registry is not None:
        env = {**REGISTRY_ENV, **env, "PATH": f"{SHIM_DIR}:{env['PATH']}"}
    for key, value in env.items():
        argv += ["--setenv", key, value]
    argv += [SANDBOX_PYTHON, "-I", "-S", TOOLBOX_PATH]
    argv += _daemon_args(spec, PROJECT_DIR, RUN_DIR, fds["listen"], fds["ready"], WIRE_PATH)
    if registry is not None:
        argv += ["--registry-port", str(REGISTRY_PORT), "--registry-socket", REGISTRY_SOCKET]
    if fds.get("block", -1) >= 0:
        argv += ["--command-uid", str(SANDBOX_UID)]
    return argv


def link_package_mounts(workspace: Path, spec: SandboxSpec) -> None:
    """Without namespaces nothing can be mounted: a symlink stands in (the code is trusted)."""
    for relative, host_dir in spec.package_mounts.items():
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
        str(_DAEMON_FILES["toolbox.py"]),
        *_daemon_args(
            spec,
            str(sandbox_dir / "workspace"),
            str(sandbox_dir / "run"),
            listen_fd,
            ready_fd,
            str(_DAEMON_FILES["sandforge_wire.py"]),
        ),
    ]
