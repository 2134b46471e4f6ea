"""What a local sandbox is made of, as command lines: bwrap's and the toolbox daemon's.

The bwrap command line holds the sandbox's whole view of the world: read-only system dirs,
a private /tmp, the disk image's dirs, /etc written from memory, the daemon and wire.py
bound read-only from memory, the seccomp filter, and an environment of PATH, HOME, LANG and
the spec's own variables only. docs/isolation.md explains each choice.
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
from .isolation import system_links, tool
from .slirp import SLIRP_DNS

PROJECT_DIR = "/workspace"
HOME_DIR = "/home/user"
RUN_DIR = "/run/sandforge"
TOOLBOX_PATH = "/opt/sandforge/toolbox.py"
WIRE_PATH = "/opt/sandforge/sandforge_wire.py"
SANDBOX_UID = 1000
SANDBOX_PATH = "/usr/local/bin:/usr/bin:/bin"


def _sandbox_python() -> tuple[str, list[str]]:
    """A Python inside the sandbox, and the bwrap args that make it visible."""
    if Path("/usr/bin/python3").exists():
        return "/usr/bin/python3", []
    prefix = sys.base_prefix
    return str(Path(prefix) / "bin" / "python3"), ["--ro-bind", prefix, prefix]


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
        # A folder's name never holds a "/": the one separator that needs no escaping.
        "--skip-dirs",
        "/".join(sorted(SKIPPED_DIRS)),
    ]


@dataclass
class Spawn:
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


def bwrap_argv(
    spawn: Spawn,
    spec: SandboxSpec,
    dirs: dict[str, Path],
    listen_fd: int,
    ready_fd: int,
    info_fd: int,
) -> list[str]:
    python, python_binds = _sandbox_python()
    argv = [
        tool("bwrap") or "bwrap",
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
        *system_links(),
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


def link_readonly_mounts(workspace: Path, spec: SandboxSpec) -> None:
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
