"""Export: a project version as a zip, over the API and through `sandforge export`."""

from __future__ import annotations

import asyncio
import io
import os
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

from sandforge.events import CompleteEvent
from tests.conftest import SCRUBBED_ENV, LiveServer


def unzip(content: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(content)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


async def offline_project(server: LiveServer) -> str:
    """A persistent-flow project with one version, built by the offline scaffolder."""
    events = await server.stream(
        "/api/agent/stream",
        {"messages": [{"role": "user", "content": "A todo list"}], "projectName": "Todo List!"},
    )
    complete = events[-1][1]
    assert isinstance(complete, CompleteEvent), complete
    assert complete.data.projectId is not None
    return complete.data.projectId


async def test_the_zip_round_trips_to_the_stored_version(server: LiveServer) -> None:
    project_id = await offline_project(server)
    store = server.services.store
    first = await store.version_files(project_id, 1)
    second_files = {**first, "img/logo.png": bytes(range(256)), "index.html": b"<h1>two</h1>"}
    await store.save_version(project_id, second_files, message="second")

    latest = await server.client.get(f"/api/projects/{project_id}/export.zip")
    assert latest.status_code == 200
    assert latest.headers["content-type"] == "application/zip"
    assert 'filename="todo-list-v2.zip"' in latest.headers["content-disposition"]
    assert unzip(latest.content) == await store.version_files(project_id, 2)

    older = await server.client.get(f"/api/projects/{project_id}/export.zip?version=1")
    assert unzip(older.content) == first
    again = await server.client.get(f"/api/projects/{project_id}/export.zip?version=1")
    assert again.content == older.content  # the same version always zips the same

    missing = await server.client.get(f"/api/projects/{project_id}/export.zip?version=9")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "version_not_found"
    bad = await server.client.get(f"/api/projects/{project_id}/export.zip?version=zero")
    assert bad.status_code == 400
    assert bad.json()["error"]["code"] == "invalid_request"
    nobody = await server.client.get("/api/projects/pj000000000000/export.zip")
    assert nobody.status_code == 404
    assert nobody.json()["error"]["code"] == "project_not_found"


def sandforge_cli(server: LiveServer, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in SCRUBBED_ENV}
    env.update(
        SANDFORGE_PORT=str(server.settings.port), SANDFORGE_DATA_DIR=str(cwd / "cli"), COLUMNS="200"
    )
    return subprocess.run(
        [sys.executable, "-m", "sandforge.cli", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def test_the_cli_downloads_the_zip(server: LiveServer, tmp_path: Path) -> None:
    project_id = await offline_project(server)
    stored = await server.services.store.version_files(project_id, 1)

    def cli(*args: str) -> Any:
        return asyncio.to_thread(sandforge_cli, server, tmp_path, *args)

    by_name = await cli("export", "Todo List!", "-o", "named.zip")
    assert by_name.returncode == 0, by_name.stderr
    assert unzip((tmp_path / "named.zip").read_bytes()) == stored

    missing = await cli("export", project_id, "--version", "5", "-o", "nope.zip")
    assert missing.returncode == 1
    assert "no version 5" in missing.stderr
    assert not any(n.startswith("nope") for n in os.listdir(tmp_path))
