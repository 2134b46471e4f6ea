"""Network egress for a local sandbox: slirp4netns gives its network namespace a way out.

With `network="egress"`, slirp4netns gives the sandbox's network namespace a tap device, a
default route and DNS at 10.0.2.3. It runs in the sandbox's cgroup as the sandbox's uid, in
its own mount namespace with seccomp, and with --disable-host-loopback, so 10.0.2.2 never
reaches the host's 127.0.0.1. Without egress the namespace has loopback only.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import signal
from dataclasses import dataclass

from .isolation import tool
from .unix import read_until

SLIRP_MTU = 65520
SLIRP_DNS = "10.0.2.3"
READY_TIMEOUT_S = 15.0

_NS_GET_USERNS = 0xB701


@dataclass
class Slirp:
    process: asyncio.subprocess.Process
    exit_fd: int
    """Its write end keeps slirp4netns running; slirp4netns exits when it closes."""
    ready: bool

    async def stop(self) -> None:
        if self.exit_fd >= 0:
            os.close(self.exit_fd)
            self.exit_fd = -1
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            await self.process.wait()


async def start_slirp(child_pid: int, prefix: list[str], log_fd: int) -> Slirp:
    """Start slirp4netns for the network namespace of `child_pid` (bwrap's child).

    `prefix` runs it where it belongs (the sandbox's cgroup and uid); its output goes to
    `log_fd`. The caller stops it, ready or not.
    """
    net_fd = os.open(f"/proc/{child_pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    fds = [net_fd]
    try:
        # The namespace's owner, not the host's: slirp4netns must join it to configure tap0.
        owner_fd = fcntl.ioctl(net_fd, _NS_GET_USERNS)
        fds.append(owner_fd)
        ready_r, ready_w = os.pipe()
        exit_r, exit_w = os.pipe()
        fds += [ready_w, exit_r]
        userns = f"/proc/self/fd/{owner_fd}"
        argv = [
            tool("nsenter") or "nsenter",
            f"--user={userns}",
            "--preserve-credentials",
            "--",
            tool("slirp4netns") or "slirp4netns",
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
        process = await asyncio.create_subprocess_exec(
            *prefix,
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log_fd,
            stderr=log_fd,
            pass_fds=fds,
            env={},
            start_new_session=True,
        )
    finally:
        for fd in fds:
            os.close(fd)
    slirp = Slirp(process, exit_w, ready=False)
    try:
        slirp.ready = await asyncio.wait_for(read_until(ready_r, b"1"), READY_TIMEOUT_S) == b"1"
    except TimeoutError:
        pass
    finally:
        os.close(ready_r)
    return slirp
