"""Who a local sandbox runs as: two unprivileged host uids, mapped into its user namespace.

Inside, commands run as uid 1000 (`SANDBOX_UID`) and the toolbox daemon as uid 0
(`TOOLBOX_UID`, root of the sandbox's user namespace only, with three capabilities). On the
host those are two uids of the sandbox's own, from ranges no real account uses: a command
cannot signal, trace, read the memory of, or take file descriptors from the daemon or bwrap's
init, because they are another user. docs/isolation.md explains the whole arrangement.

bwrap itself can only map the one uid it runs as, so the launcher (root) writes the
namespace's uid and gid maps while bwrap waits on `--userns-block-fd`, and sets the
namespace's `user.max_user_namespaces` to 0, which is what bwrap's `--disable-userns` would
do and cannot be combined with an outside map.
"""

from __future__ import annotations

import asyncio
import os

from ... import ids
from ..base import SandboxError

SANDBOX_UID = 1000
"""The uid (and gid) of every command inside a sandbox."""
TOOLBOX_UID = 0
"""The uid (and gid) of the toolbox daemon and bwrap's init inside a sandbox."""

HOST_UID_BASE = 1_000_000_000
HOST_UID_RANGE = 1 << 24
TOOLBOX_HOST_UID_BASE = HOST_UID_BASE + HOST_UID_RANGE
PROBE_UID = HOST_UID_BASE + 2 * HOST_UID_RANGE
NSENTER_TIMEOUT_S = 10.0


def host_uid(sandbox_id: str) -> int:
    """The host uid a sandbox's commands run as (and own its files as): its own."""
    return HOST_UID_BASE + ids.random_part(sandbox_id) % HOST_UID_RANGE


def toolbox_host_uid(sandbox_id: str) -> int:
    """The host uid of a sandbox's bwrap, toolbox daemon and slirp4netns: its own, and not
    the commands'. It owns the sandbox's user namespace."""
    return TOOLBOX_HOST_UID_BASE + ids.random_part(sandbox_id) % HOST_UID_RANGE


def write_id_maps(child_pid: int, sandbox_id: str) -> None:
    """Map the daemon's and the commands' uids and gids into the user namespace of bwrap's
    `child_pid` (needs root); setgroups stays denied, as bwrap would leave it."""
    maps = (
        f"{TOOLBOX_UID} {toolbox_host_uid(sandbox_id)} 1\n{SANDBOX_UID} {host_uid(sandbox_id)} 1\n"
    ).encode()
    for name, data in (("uid_map", maps), ("setgroups", b"deny"), ("gid_map", maps)):
        fd = os.open(f"/proc/{child_pid}/{name}", os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.write(fd, data)  # the kernel takes a map in one write or not at all
        finally:
            os.close(fd)


async def disable_user_namespaces(child_pid: int, nsenter: str) -> None:
    """Forbid new user namespaces inside the user namespace of `child_pid`.

    The limit is per namespace and only a process with CAP_SYS_RESOURCE there may raise it
    again, which nothing in the sandbox keeps. A process that joined the namespace writes
    it: the server is threaded and cannot join one itself.
    """
    helper = await asyncio.create_subprocess_exec(
        nsenter,
        f"--user=/proc/{child_pid}/ns/user",
        "--",
        "/bin/sh",
        "-c",
        "echo 0 > /proc/sys/user/max_user_namespaces",
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        env={},
    )
    try:
        _, err = await asyncio.wait_for(helper.communicate(), NSENTER_TIMEOUT_S)
    except TimeoutError:
        helper.kill()
        await helper.wait()
        err = b"timed out"
    if helper.returncode != 0:
        raise SandboxError(
            "cannot disable user namespaces inside the sandbox: "
            + err.decode(errors="replace").strip()
        )
