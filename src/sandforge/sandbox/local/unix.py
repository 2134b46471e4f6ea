"""Sockets and pipes the host shares with a sandbox, used without trusting the sandbox.

Code inside a sandbox can replace `toolbox.sock` or `ports/3000.sock` with a
symlink to any socket on the host (a database, a container engine). So the host
never connects by path: it walks to the socket with O_NOFOLLOW, checks that the
inode is a socket, and connects through `/proc/self/fd/N`, which names exactly
that inode.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import stat
from pathlib import Path
from typing import Any

import httpcore

from ..base import SandboxError


def _open_socket_inode(path: str) -> int:
    parts = Path(path).parts
    fd = os.open(parts[0], os.O_PATH | os.O_DIRECTORY)
    try:
        for index, part in enumerate(parts[1:], start=1):
            last = index == len(parts) - 1
            flags = os.O_PATH | os.O_NOFOLLOW | (0 if last else os.O_DIRECTORY)
            child = os.open(part, flags, dir_fd=fd)
            os.close(fd)
            fd = child
        if not stat.S_ISSOCK(os.fstat(fd).st_mode):
            raise SandboxError(f"{path} is not a socket; the sandbox may have been tampered with")
    except BaseException:
        os.close(fd)
        raise
    return fd


def nofollow_socket_path(path: str) -> tuple[int, str]:
    """An O_PATH fd for the socket at `path` and the `/proc` path that reaches it.

    Close the fd once connected.
    """
    fd = _open_socket_inode(path)
    return fd, f"/proc/self/fd/{fd}"


def connect_unix(path: str) -> socket.socket:
    """A connected, non-blocking unix socket to the socket inode at `path`."""
    fd, proc_path = nofollow_socket_path(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(proc_path)
    except BaseException:
        sock.close()
        raise
    finally:
        os.close(fd)
    sock.setblocking(False)
    return sock


def listen_unix(path: Path, backlog: int = 128) -> socket.socket:
    """A listening unix socket at `path`, which may be longer than sun_path allows.

    The bind goes through `/proc/self/fd/<dir fd>/<name>`, so only that short form has
    to fit in the 108 bytes of a socket address, and no symlink on the way is followed.
    """
    dir_fd = _open_socket_dir(path.parent)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path.name, dir_fd=dir_fd)
        sock.bind(f"/proc/self/fd/{dir_fd}/{path.name}")
        sock.listen(backlog)
    except BaseException:
        sock.close()
        raise
    finally:
        os.close(dir_fd)
    return sock


def _open_socket_dir(path: Path) -> int:
    parts = path.parts
    fd = os.open(parts[0], os.O_PATH | os.O_DIRECTORY)
    try:
        for part in parts[1:]:
            child = os.open(part, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            os.close(fd)
            fd = child
    except BaseException:
        os.close(fd)
        raise
    return fd


class NoFollowUnixBackend(httpcore.AsyncNetworkBackend):
    """httpcore backend whose unix-socket connects go through `nofollow_socket_path`."""

    def __init__(self) -> None:
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> httpcore.AsyncNetworkStream:
        return await self._inner.connect_tcp(host, port, timeout, local_address, socket_options)

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Any = None
    ) -> httpcore.AsyncNetworkStream:
        try:
            fd, proc_path = nofollow_socket_path(path)
        except FileNotFoundError as exc:
            raise httpcore.ConnectError(f"{path} does not exist") from exc
        except (OSError, SandboxError) as exc:
            raise httpcore.ConnectError(str(exc)) from exc
        try:
            return await self._inner.connect_unix_socket(proc_path, timeout, socket_options)
        finally:
            os.close(fd)

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


async def read_until(fd: int, until: bytes) -> bytes:
    """Read from a pipe until `until` appears or the writers are gone; the caller closes `fd`.

    Watched with add_reader rather than handed to connect_read_pipe: uvloop closes a
    pipe's fd and then the file object over it again, and that second close hits whatever
    another thread opened under the same number meanwhile (a SQLite file, an rmtree's
    directory).
    """
    loop = asyncio.get_running_loop()
    os.set_blocking(fd, False)
    readable = asyncio.Event()
    loop.add_reader(fd, readable.set)
    data = b""
    try:
        while until not in data:
            await readable.wait()
            readable.clear()
            try:
                chunk = os.read(fd, 4096)
            except BlockingIOError:
                continue
            if not chunk:
                break
            data += chunk
        return data
    finally:
        loop.remove_reader(fd)
