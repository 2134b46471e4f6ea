"""A project's settings: the app's environment (encrypted, for the dev server only), the
sandbox's resources, and deleting long-stopped sandboxes."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest

from sandforge.events import CompleteEvent
from sandforge.sandbox.local import LocalSandbox
from tests.conftest import LiveServer
from tests.fakes.model_apis import FakeAnthropic, ToolCall, Turn
from tests.projects.test_export import sandforge_cli
from tests.projects.test_publish import offline_app

SECRET = "s3cr3t-zebra-4242"
DEV_SERVER_ENV = (
    "for p in /proc/[0-9]*; do "
    "if tr '\\0' ' ' < $p/cmdline 2>/dev/null | grep -q http.server; then "
    "tr '\\0' '\\n' < $p/environ; fi; done"
)


@pytest.fixture
def fake() -> Iterator[FakeAnthropic]:
    with FakeAnthropic() as server:
        yield server


def ask(prompt: str, **extra: Any) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": prompt}], **extra}


async def finish(server: LiveServer, body: dict[str, Any]) -> CompleteEvent:
    events = await server.stream("/api/agent/stream-daytona", body)
    complete = events[-1][1]
    assert isinstance(complete, CompleteEvent), complete
    return complete


async def test_an_app_variable_reaches_the_dev_server_and_never_the_model(
    make_server: Any, fake: FakeAnthropic
) -> None:
    page = {"path": "index.html", "content": "<h1>Env</h1>"}
    # The model's command sees its own environment: the sandbox's clean one. (It could still
    # read the dev server's /proc/<pid>/environ, as the same uid: see the README.)
    snoop = "env; tr '\\\\0' '\\\\n' < /proc/self/environ"
    fake.set_script(
        [
            Turn([ToolCall("write_file", page)]),
            Turn(["Built."]),
            Turn([ToolCall("run_command", {"command": snoop})]),
            Turn(["Looked."]),
        ]
    )
    server: LiveServer = await make_server(
        model="anthropic:claude-sonnet-4-5",
        anthropic_api_key=fake.api_key,
        anthropic_base_url=fake.url,
    )
    first = await finish(server, ask("An env page"))
    project_id = first.data.projectId
    changed = await server.client.put(
        f"/api/projects/{project_id}/settings", json={"env": {"APP_SECRET": SECRET}}
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["env"] == ["APP_SECRET"]
    assert SECRET not in changed.text

    provider = server.services.fleet.provider("local")
    sandbox = await provider.get(first.data.sandboxId)
    seen = await sandbox.exec(DEV_SERVER_ENV)
    assert f"APP_SECRET={SECRET}" in seen.stdout.splitlines()  # the dev server has it

    await finish(server, ask("Look around", projectId=project_id))
    seen = await sandbox.exec(DEV_SERVER_ENV)
    assert f"APP_SECRET={SECRET}" in seen.stdout.splitlines()  # restarted with it too
    assert fake.request_count == 4
    assert "HOME=" in json.dumps(fake.requests[3].json)  # the command's output went back
    for request in fake.requests:
        assert SECRET not in json.dumps(request.json)  # prompts, history and command output

    shown = await server.client.get(f"/api/projects/{project_id}/settings")
    assert shown.json()["env"] == ["APP_SECRET"] and SECRET not in shown.text
    database = server.settings.data_dir / "sandforge.db"
    stored = b"".join(
        [
            await asyncio.to_thread(p.read_bytes)
            for p in (database, database.with_name("sandforge.db-wal"))
            if await asyncio.to_thread(p.exists)
        ]
    )
    assert b"APP_SECRET" in stored and SECRET.encode() not in stored  # encrypted at rest

    removed = await server.client.put(
        f"/api/projects/{project_id}/settings", json={"env": {"APP_SECRET": None}}
    )
    assert removed.json()["env"] == []
    bad = await server.client.put(
        f"/api/projects/{project_id}/settings", json={"env": {"PATH": "/evil"}}
    )
    assert bad.status_code == 400
    assert bad.json()["error"]["code"] == "invalid_env"


async def test_new_resources_rebuild_the_sandbox_and_gc_deletes_stopped_ones(
    server: LiveServer,
) -> None:
    complete = await offline_app(server, "Resources")
    project_id, sandbox_id = complete.data.projectId, complete.data.sandboxId
    assert project_id is not None
    provider = server.services.fleet.provider("local")

    updated = await server.client.put(
        f"/api/projects/{project_id}/settings",
        json={"sandbox": {"memoryMb": 384, "cpu": 0.5, "egress": False}},
    )
    assert updated.status_code == 200, updated.text
    assert updated.json()["sandbox"] == {"memoryMb": 384, "cpu": 0.5, "egress": False}
    assert (await server.client.get(f"/api/sandboxes/{sandbox_id}")).status_code == 404

    # Opening the preview rebuilds the sandbox from the stored files, with the new resources.
    preview = await server.preview_get(project_id, "/", complete.data.accessToken)
    assert preview.status_code == 200
    assert preview.content == (await server.services.store.files(project_id))["index.html"]
    rebuilt_id = (await server.services.store.get_project(project_id)).sandbox_id
    assert rebuilt_id is not None and rebuilt_id != sandbox_id
    rebuilt = await provider.get(rebuilt_id)
    assert isinstance(rebuilt, LocalSandbox)
    assert (rebuilt.spec.memory_mb, rebuilt.spec.cpu_weight) == (384, 50)

    # A running sandbox is never collected; a stopped one is, once stopped long enough.
    assert (await server.client.post("/api/gc?stoppedForDays=0")).json() == {"deleted": []}
    await server.client.post(f"/api/sandboxes/{rebuilt_id}/stop")
    kept = await server.client.post("/api/gc?stoppedForDays=3")
    assert kept.json() == {"deleted": []}
    cli = await asyncio.to_thread(
        sandforge_cli, server, server.settings.data_dir, "gc", "--days", "0"
    )
    assert cli.returncode == 0, cli.stderr
    assert f"deleted {rebuilt_id}" in cli.stdout
    assert (await server.client.get(f"/api/sandboxes/{rebuilt_id}")).status_code == 404
    again = await server.preview_get(project_id, "/", complete.data.accessToken)
    assert again.status_code == 200  # rebuilt on demand once more
