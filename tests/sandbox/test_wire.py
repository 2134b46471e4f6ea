"""One wire protocol: an error that crosses a socket comes back as the class it left as."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandforge.errors import InsufficientStorage
from sandforge.sandbox import wire
from sandforge.sandbox.base import (
    HostDiskFull,
    PathEscapeError,
    SandboxDiskFull,
    SandboxError,
    SandboxFileNotFound,
    SandboxSpec,
    SandboxUnavailable,
    check_reply,
)
from sandforge.sandbox.local import (
    BwrapLauncher,
    ControlServer,
    LocalSandboxProvider,
    RemoteLauncher,
)
from tests.sandbox.conftest import require_isolation


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("disk_full", SandboxDiskFull),
        ("host_disk_full", HostDiskFull),
        ("path_escape", PathEscapeError),
        ("file_not_found", SandboxFileNotFound),
        ("sandbox_unavailable", SandboxUnavailable),
        ("is_directory", SandboxError),  # a code without a class of its own
    ],
)
def test_an_error_reply_becomes_its_own_class(code: str, expected: type[SandboxError]) -> None:
    with pytest.raises(SandboxError) as raised:
        check_reply(wire.error(code, "what happened"))
    assert type(raised.value) is expected
    assert raised.value.message == "what happened"
    assert check_reply(wire.ok(pid=7)) == {"ok": True, "pid": 7}


def test_messages_over_the_cap_or_not_json_are_refused() -> None:
    ours, theirs = socket.socketpair()
    with ours, theirs:
        wire.send(ours, wire.request("exec", cmd="x" * 100))
        with pytest.raises(wire.MalformedMessage, match="over 50 bytes"):
            wire.receive(theirs, limit=50)
    for data in (b"not json", b"[1, 2]", b'"text"'):
        with pytest.raises(wire.MalformedMessage):
            wire.decode(data)
    ours, theirs = socket.socketpair()
    with ours, theirs:
        ours.sendall(b'{"op": "exec"')  # and then the peer goes away
        ours.close()
        with pytest.raises(wire.MalformedMessage, match="closed"):
            wire.receive(theirs)


async def _raw_control_request(path: Path, line: bytes) -> wire.Message:
    reader, writer = await asyncio.open_unix_connection(str(path))
    try:
        writer.write(line)
        await writer.drain()
        return await wire.read(reader)
    finally:
        writer.close()


async def test_the_control_socket_answers_bad_requests_with_an_error(tmp_path: Path) -> None:
    launcher = BwrapLauncher()
    server = ControlServer(launcher, tmp_path / "sandboxd.sock", tmp_path / "sandboxes")
    await server.start()
    try:
        garbage = await _raw_control_request(server.socket_path, b"{not json\n")
        unknown = await _raw_control_request(
            server.socket_path, wire.encode(wire.request("reboot", sandbox_id="sb0"))
        )
    finally:
        await server.close()
        await launcher.close()
    assert garbage["ok"] is False and garbage["error"]["code"] == "bad_message"
    assert unknown["ok"] is False and "reboot" in unknown["error"]["message"]


def _mount_tmpfs(target: Path, size_mb: int) -> None:
    target.mkdir()
    libc = ctypes.CDLL(None, use_errno=True)
    options = f"size={size_mb}m,mode=0755".encode()
    if libc.mount(b"tmpfs", os.fsencode(target), b"tmpfs", 0, options) != 0:
        pytest.skip(f"cannot mount a tmpfs here: {os.strerror(ctypes.get_errno())}")


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 32 MiB filesystem of its own, to fill up without touching the host's."""
    require_isolation()
    target = tmp_path / "small"
    _mount_tmpfs(target, 32)
    try:
        yield target
    finally:
        with contextlib.suppress(OSError):
            ctypes.CDLL(None).umount2(os.fsencode(target), 2)  # MNT_DETACH


async def test_a_full_host_disk_crosses_the_control_socket_as_host_disk_full(
    small_disk: Path,
) -> None:
    launcher = BwrapLauncher()
    sandboxes_dir = small_disk / "sandboxes"
    sandboxes_dir.mkdir()
    server = ControlServer(launcher, small_disk / "sandboxd.sock", sandboxes_dir)
    await server.start()
    provider = LocalSandboxProvider(sandboxes_dir, RemoteLauncher(server.socket_path))
    try:
        first = await provider.create(SandboxSpec(disk_mb=16))  # makes the image template
        await first.delete()
        free = os.statvfs(small_disk).f_bavail * os.statvfs(small_disk).f_frsize
        (small_disk / "filler").write_bytes(b"\0" * (free - (32 << 10)))

        with pytest.raises(HostDiskFull) as raised:
            await provider.create(SandboxSpec(disk_mb=16))
        assert isinstance(raised.value, InsufficientStorage)
        assert raised.value.http_status == 507
        assert "is full" in raised.value.message and "sandboxes delete" in raised.value.message
        assert await provider.list() == []
        assert not list(sandboxes_dir.glob("*/.disk.img.*.tmp"))
    finally:
        await server.close()
        await launcher.close()
