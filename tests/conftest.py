"""Shared fixtures: a real server on a real socket, with real worker processes and sandboxes."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from sandforge.config import Settings
from sandforge.events import Event, decode_sse
from sandforge.server.app import SandforgeApp, create_app
from sandforge.server.runner import KEEP_ALIVE_S
from sandforge.server.services import Services

TESTS_DIR = Path(__file__).parent
SCRUBBED_ENV = (
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_BASE_URL",
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "OLLAMA_BASE_URL",
    "OLLAMA_API_KEY",
    "DAYTONA_API_KEY",
    "DAYTONA_API_URL",
    "SANDFORGE_MODEL",
    "SANDFORGE_ALLOWED_MODELS",
    "SANDFORGE_DATABASE_URL",
    "SANDFORGE_SANDBOX",
)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never see the developer's keys, and workers can import tests/scripted."""
    for name in SCRUBBED_ENV:
        monkeypatch.delenv(name, raising=False)
    path = os.environ.get("PYTHONPATH", "")
    root = str(TESTS_DIR.parent)
    monkeypatch.setenv("PYTHONPATH", f"{root}{os.pathsep}{path}" if path else root)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    # The rendered check launches Chromium per run; tests of it turn it on.
    return Settings(data_dir=tmp_path / "data", dev_server_ready_timeout_s=30, render_check=False)


@dataclass
class LiveServer:
    settings: Settings
    services: Services
    client: httpx.AsyncClient

    @property
    def sandboxes_dir(self) -> Path:
        return self.settings.sandboxes_dir

    def sandbox_dirs(self) -> list[str]:
        if not self.sandboxes_dir.exists():
            return []
        return sorted(p.name for p in self.sandboxes_dir.iterdir() if p.name.startswith("sb"))

    async def stream(self, path: str, body: Any) -> list[tuple[int, Event]]:
        async with self.client.stream("POST", path, json=body) as response:
            assert response.status_code == 200, await response.aread()
            return [item async for item in decode_sse(response.aiter_lines())]

    def preview_host(self, sandbox_id: str, port: int = 3000) -> str:
        return f"{port}-{sandbox_id}.{self.settings.preview_domain}:{self.settings.port}"

    async def preview_get(
        self, sandbox_id: str, path: str = "/", token: str | None = None, port: int = 3000
    ) -> httpx.Response:
        headers = {"host": self.preview_host(sandbox_id, port)}
        if token is not None:
            headers["x-sandforge-preview-token"] = token
        return await self.client.get(path, headers=headers)


def free_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@pytest.fixture
async def make_server(settings: Settings) -> AsyncIterator[Any]:
    """Start servers on real sockets; each is shut down (sandboxes included) after the test."""
    running: list[tuple[uvicorn.Server, asyncio.Task[None], httpx.AsyncClient]] = []

    async def start(**overrides: Any) -> LiveServer:
        sock = free_socket()
        live_settings = settings.model_copy(update={"port": sock.getsockname()[1], **overrides})
        app = create_app(live_settings)
        assert isinstance(app, SandforgeApp)
        config = uvicorn.Config(
            app, log_level="warning", lifespan="on", timeout_keep_alive=KEEP_ALIVE_S
        )
        server = uvicorn.Server(config)
        task = asyncio.create_task(server.serve(sockets=[sock]))
        while not server.started:
            assert not task.done(), "the server did not start"
            await asyncio.sleep(0.01)
        client = httpx.AsyncClient(base_url=f"http://127.0.0.1:{live_settings.port}", timeout=60)
        running.append((server, task, client))
        return LiveServer(live_settings, app.services, client)

    yield start
    for server, task, client in running:
        await client.aclose()
        server.should_exit = True
        await task


@pytest.fixture
async def server(make_server: Any) -> LiveServer:
    live: LiveServer = await make_server()
    return live
