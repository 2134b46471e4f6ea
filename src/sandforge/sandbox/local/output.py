"""The output of a local sandbox's own processes, read by the host into sandbox.log.

bwrap, bwrap's init, the toolbox daemon (a traceback, if it ever crashes) and slirp4netns
write to a pipe, and the host copies what arrives into `<sandbox dir>/sandbox.log`, up to
a cap. Never the file itself: a process in the sandbox that got hold of one of these fds
could otherwise grow a host file without bound, past its own disk cap, with writes or
fallocate. The last few KiB stay in memory for the error a failed start reports.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from pathlib import Path

LOG_NAME = "sandbox.log"
LOG_CAP_BYTES = 1 << 20
TAIL_BYTES = 2000
DRAIN_TIMEOUT_S = 5.0
_FULL_NOTE = b"\n[sandforge: sandbox.log reached its size cap; later output is not kept]\n"


class SandboxOutput:
    def __init__(self, sandbox_dir: Path) -> None:
        """Opens the pipe and the log file (blocking: call it off the event loop)."""
        self._file = os.open(
            sandbox_dir / LOG_NAME,
            os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC,
            0o600,
        )
        self._read_fd, self.write_fd = os.pipe()
        self._written = 0
        self._tail = bytearray()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed: asyncio.Future[None] | None = None

    async def start(self) -> None:
        """Start copying what the processes write; give them `write_fd` before this.

        Watched with add_reader, not connect_read_pipe: uvloop would close the pipe's fd
        twice (see unix.read_until)."""
        self._loop = asyncio.get_running_loop()
        self._closed = self._loop.create_future()
        os.set_blocking(self._read_fd, False)
        self._loop.add_reader(self._read_fd, self._readable)

    def _readable(self) -> None:
        try:
            data = os.read(self._read_fd, 65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if data:
            self.data_received(data)
        else:
            self._stop_reading()

    def _stop_reading(self) -> None:
        if self._loop is not None and self._read_fd >= 0:
            self._loop.remove_reader(self._read_fd)
            os.close(self._read_fd)
            self._read_fd = -1
        if self._closed is not None and not self._closed.done():
            self._closed.set_result(None)

    def data_received(self, data: bytes) -> None:
        self._tail += data
        del self._tail[:-TAIL_BYTES]
        room = LOG_CAP_BYTES - self._written
        if room <= 0:
            return
        kept = data[:room] + (_FULL_NOTE if len(data) >= room else b"")
        self._written += len(data)
        with contextlib.suppress(OSError):  # a full host disk must not stop the sandbox
            os.write(self._file, kept)

    def close_writer(self) -> None:
        """The host's own copy of the write end; the pipe ends when the processes' do."""
        if self.write_fd >= 0:
            os.close(self.write_fd)
            self.write_fd = -1

    async def tail(self) -> str:
        """The last of what the processes wrote, once they are gone (or after a while)."""
        self.close_writer()
        if self._closed is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._closed), DRAIN_TIMEOUT_S)
        return self._tail.decode(errors="replace").strip()

    def close(self) -> None:
        self.close_writer()
        self._stop_reading()
        if self._read_fd >= 0:  # never started
            os.close(self._read_fd)
            self._read_fd = -1
        if self._file >= 0:
            os.close(self._file)
            self._file = -1
