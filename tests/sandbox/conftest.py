"""Fixtures for the local sandbox tests: real bwrap, real cgroups, real disk images.

The provider goes through the server's control socket (`ControlServer` + `RemoteLauncher`),
the way generation workers do, so "the server still answers" is checked against the
real thing after every attack.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from sandforge.sandbox.base import SandboxSpec
from sandforge.sandbox.local import (
    BwrapLauncher,
    ControlServer,
    LocalSandbox,
    LocalSandboxProvider,
    RemoteLauncher,
    check_isolation,
)
from sandforge.sandbox.local.registry import RegistryBridge
from tests.sandbox.helpers import SECRETS


def require_isolation() -> None:
    isolation = check_isolation()
    if not isolation.available:
        pytest.skip(f"local sandbox isolation is unavailable here: {isolation.problem}")


@dataclass
class Rig:
    """A launcher, the server's control socket in front of it, and a provider using it."""

    launcher: BwrapLauncher
    server: ControlServer
    provider: LocalSandboxProvider
    data_dir: Path
    made: list[LocalSandbox] = field(default_factory=list)

    async def create(self, **spec: object) -> LocalSandbox:
        sandbox = await self.provider.create(SandboxSpec(**spec))  # type: ignore[arg-type]
        self.made.append(sandbox)
        return sandbox

    async def server_answers(self) -> bool:
        remote = RemoteLauncher(self.server.socket_path)
        return await remote.is_running("sb000000000000") is False


@pytest.fixture
def secret_env(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Host secrets in the server's own environment, which must never reach a sandbox."""
    for key, value in SECRETS.items():
        monkeypatch.setenv(key, value)
    return SECRETS


@pytest.fixture
def registry_bridge() -> RegistryBridge | None:
    """The launcher's package bridge; tests of it override this fixture."""
    return None


@pytest.fixture
async def rig(
    tmp_path: Path, secret_env: dict[str, str], registry_bridge: RegistryBridge | None
) -> AsyncIterator[Rig]:
    require_isolation()
    launcher = BwrapLauncher(registry=registry_bridge)
    data_dir = tmp_path / "data"
    sandboxes_dir = data_dir / "sandboxes"
    sandboxes_dir.mkdir(parents=True)
    server = ControlServer(launcher, data_dir / "sandboxd.sock", sandboxes_dir)
    await server.start()
    provider = LocalSandboxProvider(sandboxes_dir, RemoteLauncher(server.socket_path))
    rig = Rig(launcher, server, provider, data_dir)
    try:
        yield rig
    finally:
        for sandbox in rig.made:
            with contextlib.suppress(Exception):
                await sandbox.delete()
        await server.close()
        await launcher.close()


AssertAlive = Callable[..., Awaitable[None]]


@pytest.fixture
async def assert_alive(rig: Rig) -> AssertAlive:
    """After an attack: the attacked sandbox, a bystander and the server all still answer."""
    bystander = await rig.create(labels={"role": "bystander"})
    await bystander.write_file("mine.txt", b"bystander's own file")

    async def check(*sandboxes: LocalSandbox) -> None:
        for sandbox in (*sandboxes, bystander):
            result = await sandbox.exec("echo alive", timeout=30)
            assert (result.exit_code, result.stdout) == (0, "alive\n"), result
        assert await bystander.read_file("mine.txt") == b"bystander's own file"
        assert await rig.server_answers()

    return check


@dataclass
class HostListener:
    """A TCP listener on the host's 127.0.0.1 that records every connection it gets."""

    port: int
    connections: list[tuple[str, int]]


@pytest.fixture
def host_listener() -> Iterator[HostListener]:
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    server.settimeout(0.2)
    listener = HostListener(server.getsockname()[1], [])
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, peer = server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            listener.connections.append(peer)
            conn.close()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield listener
    finally:
        stop.set()
        thread.join()
        server.close()
