"""Providers under test: local (bwrap) and Daytona (the real SDK against a fake API)."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from sandforge.sandbox import (
    ProcessStatus,
    Sandbox,
    SandboxError,
    SandboxProvider,
    SandboxSpec,
)
from sandforge.sandbox.daytona import DaytonaOptions, DaytonaProvider
from sandforge.sandbox.local import BwrapLauncher, LocalSandboxProvider
from tests.fakes.daytona_api import HOME_DIR, FakeDaytona

API_KEY = "sandforge-test-key"
PROJECT_DIR = f"{HOME_DIR}/project"
PROVIDERS = ("local", "daytona")

MakeSandbox = Callable[..., Awaitable[Sandbox]]


def free_port() -> int:
    """A port nothing on this host listens on (fake Daytona sandboxes share the host's ports)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def daytona_options(fake: FakeDaytona, **overrides: Any) -> DaytonaOptions:
    options = DaytonaOptions(
        api_key=API_KEY,
        api_url=fake.url,
        target=fake.target,
        project_dir=PROJECT_DIR,
        create_timeout_s=30.0,
        cleanup_grace_s=10.0,
    )
    return replace(options, **overrides)


@pytest.fixture
def fake_daytona() -> Iterator[FakeDaytona]:
    with FakeDaytona(api_key=API_KEY) as fake:
        yield fake


@pytest.fixture
async def daytona_provider(fake_daytona: FakeDaytona) -> AsyncIterator[DaytonaProvider]:
    provider = DaytonaProvider(daytona_options(fake_daytona))
    yield provider
    await provider.aclose()


@pytest.fixture
async def local_provider() -> AsyncIterator[LocalSandboxProvider]:
    # A short base dir: unix sockets live under it, and AF_UNIX paths are capped at 108 bytes.
    base = Path(tempfile.mkdtemp(prefix="sf-"))
    launcher = BwrapLauncher()
    try:
        yield LocalSandboxProvider(base / "sandboxes", launcher)
    finally:
        await launcher.close()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(params=PROVIDERS)
def provider(request: pytest.FixtureRequest) -> SandboxProvider:
    found: SandboxProvider = request.getfixturevalue(f"{request.param}_provider")
    return found


@pytest.fixture
async def make_sandbox(provider: SandboxProvider) -> AsyncIterator[MakeSandbox]:
    """Create sandboxes on the provider under test; whatever is left is deleted afterwards."""
    made: list[Sandbox] = []

    async def make(spec: SandboxSpec | None = None) -> Sandbox:
        sandbox = await provider.create(spec or SandboxSpec())
        made.append(sandbox)
        return sandbox

    yield make
    for sandbox in made:
        with contextlib.suppress(SandboxError):
            await sandbox.delete()


async def wait_for_process(
    sandbox: Sandbox,
    name: str,
    done: Callable[[ProcessStatus], bool],
    timeout: float = 20.0,
) -> ProcessStatus:
    """Poll process_status until `done` holds (no fixed sleeps)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    delay = 0.02
    while True:
        status = await sandbox.process_status(name)
        if done(status):
            return status
        assert loop.time() < deadline, f"process {name!r} never got there: {status}"
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.3)
