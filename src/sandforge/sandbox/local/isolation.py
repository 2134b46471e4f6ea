"""What this machine can do for local sandboxes.

`check_isolation()` probes once for bwrap, user namespaces, cgroups and disk images, and
says what is missing and the command that fixes it. `Mode` is what the launcher does with
the answer. docs/isolation.md describes the whole of a local sandbox's isolation.
"""

from __future__ import annotations

import enum
import functools
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from ..base import SandboxUnavailable
from . import cgroups, disk
from .users import PROBE_UID


def tool(name: str) -> str | None:
    return shutil.which(name) or next(
        (p for p in (f"/usr/bin/{name}", f"/usr/sbin/{name}", f"/bin/{name}") if Path(p).exists()),
        None,
    )


def drop_privileges(uid: int) -> list[str]:
    """The command prefix that runs the rest as `uid`, with no capability left to regain."""
    setpriv = tool("setpriv") or "setpriv"
    return [
        setpriv,
        f"--reuid={uid}",
        f"--regid={uid}",
        "--clear-groups",
        "--bounding-set=-all",
        "--no-new-privs",
        "--",
    ]


def system_links() -> list[str]:
    """bwrap args for /bin, /lib and the rest, which are links into /usr on merged-usr hosts."""
    links = []
    for name in ("bin", "sbin", "lib", "lib64", "lib32"):
        if Path("/usr", name).is_dir():
            links += ["--symlink", f"usr/{name}", f"/{name}"]
    return links


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


def probe_isolation(bwrap: str | None = None) -> Isolation:
    """Check bwrap, user namespaces, cgroups and disk images; uncached (see check_isolation)."""
    bwrap = bwrap or tool("bwrap")
    if bwrap is None or not Path(bwrap).exists():
        return Isolation(
            False,
            "bubblewrap (bwrap) is not installed: run `apt-get install bubblewrap`, "
            + _UNISOLATED_HINT,
        )
    root = os.geteuid() == 0
    missing = [name for name in ("setpriv", "nsenter") if tool(name) is None]
    if root and missing:
        return Isolation(
            False,
            f"{' and '.join(missing)} from util-linux cannot be found: run "
            "`apt-get install util-linux`, " + _UNISOLATED_HINT,
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
        *system_links(),
        "--",
        "/usr/bin/true",
    ]
    if root:
        argv = drop_privileges(PROBE_UID) + argv
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
    if tool("slirp4netns") is None or tool("nsenter") is None:
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
def cgroup_driver() -> cgroups.CgroupDriver:
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
