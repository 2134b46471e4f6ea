"""Whole generations on the Daytona provider, through the HTTP API and the preview proxy.

The server and its worker processes talk to tests/fakes/daytona_api.py with the official SDK.
Fake Daytona sandboxes serve on host ports, and the web-app template uses port 3000, so
these tests run one dev server at a time; each fake is closed (its processes killed) after.
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import SecretStr

from sandforge.events import PROGRESS_ORDER, CompleteEvent, Event, ToolEvent
from sandforge.sandbox.daytona import LABEL_PREVIEW, PREVIEW_TOKEN_HEADER
from sandforge.server.preview.auth import TOKEN_HEADER
from tests.conftest import LiveServer
from tests.fakes.daytona_api import FakeDaytona
from tests.providers.conftest import API_KEY, PROJECT_DIR
from tests.scripted.scripted_models import CALCULATOR_HTML

DEV_PORT = 3000
CALCULATOR = {
    "messages": [{"role": "user", "content": "Create a calculator with a modern design"}],
    "projectType": "web-app",
    "agents": ["frontend-dev", "ui-designer"],
    "projectName": "calc",
    "sandbox": "daytona",
}


@pytest.fixture
def fake() -> Iterator[FakeDaytona]:
    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", DEV_PORT)) == 0:
            pytest.fail(f"port {DEV_PORT} is taken on this host; fake Daytona dev servers need it")
    with FakeDaytona(api_key=API_KEY) as server:
        yield server


async def daytona_server(make_server: Any, fake: FakeDaytona, **overrides: Any) -> LiveServer:
    values: dict[str, Any] = {
        "daytona_api_key": SecretStr(API_KEY),
        "daytona_api_url": fake.url,
        "daytona_target": fake.target,
        "daytona_cleanup_grace_s": 15.0,
    }
    values.update(overrides)
    server: LiveServer = await make_server(**values)
    return server


def statuses(events: list[tuple[int, Event]]) -> list[str]:
    return [e.data.status for _, e in events if e.type == "progress"]


async def test_a_generation_on_daytona_serves_its_preview_through_sandforge(
    make_server: Any, fake: FakeDaytona
) -> None:
    server = await daytona_server(
        make_server, fake, model="factory:tests.scripted.scripted_models:calculator"
    )
    events = await server.stream("/api/agent/stream-daytona", CALCULATOR)

    assert statuses(events) == list(PROGRESS_ORDER)
    run_tool = next(e for _, e in events if isinstance(e, ToolEvent) and e.data.action == "run")
    assert run_tool.data.exitCode == 0  # `ls calc` ran through process.exec
    complete = events[-1][1]
    assert isinstance(complete, CompleteEvent), complete
    data = complete.data
    stored = fake.sandboxes[data.sandboxId]
    assert data.projectDir == PROJECT_DIR
    assert data.projectId is not None and data.accessToken
    assert data.previewUrl == f"http://3000-{data.projectId}.localhost:{server.settings.port}/"
    # Daytona's own preview token never leaves the server.
    assert stored.preview_token not in {data.accessToken, stored.labels[LABEL_PREVIEW]}
    assert stored.labels["run"] == data.runId and stored.labels["sandforge"] == "1"
    assert stored.labels["project"] == data.projectId
    assert stored.env == {}
    on_disk = fake.host_path(data.sandboxId, f"{PROJECT_DIR}/index.html")
    assert on_disk.read_text() == CALCULATOR_HTML

    assert (await server.preview_get(data.projectId)).status_code == 401
    fake.requests.clear()
    page = await server.preview_get(data.projectId, token=data.accessToken)
    assert (page.status_code, page.text) == (200, CALCULATOR_HTML)
    engine = await server.preview_get(data.projectId, "/calc/engine.js", token=data.accessToken)
    assert engine.text == "export const add = (a, b) => a + b;\n"
    # The proxy reached Daytona's preview with Daytona's token, added server-side, and without
    # passing sandforge's on.
    proxied = [r for r in fake.requests if r.kind == "preview"]
    assert [r.path for r in proxied] == [
        f"/preview/{data.sandboxId}/3000/",
        f"/preview/{data.sandboxId}/3000/calc/engine.js",
    ]
    for request in proxied:
        headers = {k.lower(): v for k, v in request.headers.items()}
        assert headers[PREVIEW_TOKEN_HEADER] == stored.preview_token
        assert TOKEN_HEADER not in headers

    # The sandbox's own preview host works too, with the sandbox's sandforge token.
    direct = await server.preview_get(data.sandboxId, token=stored.labels[LABEL_PREVIEW])
    assert (direct.status_code, direct.text) == (200, CALCULATOR_HTML)
    assert (await server.preview_get(data.sandboxId, token=data.accessToken)).status_code == 401

    status = (await server.client.get(f"/api/sandboxes/{data.sandboxId}/preview")).json()
    assert status["status"] == "ready"
    listed = (await server.client.get("/api/sandboxes")).json()["sandboxes"]
    assert [s["id"] for s in listed if s["provider"] == "daytona"] == [data.sandboxId]

    deleted = await server.client.delete(f"/api/sandboxes/{data.sandboxId}")
    assert deleted.status_code == 204
    assert fake.sandboxes == {}
    gone = await server.preview_get(data.sandboxId, token=stored.labels[LABEL_PREVIEW])
    assert gone.status_code == 404


async def test_an_expired_daytona_sandbox_is_rebuilt_at_the_same_url(
    make_server: Any, fake: FakeDaytona
) -> None:
    server = await daytona_server(
        make_server, fake, model="factory:tests.scripted.scripted_models:calculator"
    )
    complete = (await server.stream("/api/agent/stream-daytona", CALCULATOR))[-1][1]
    assert isinstance(complete, CompleteEvent), complete
    first, project_id = complete.data.sandboxId, complete.data.projectId
    assert project_id is not None
    fake.expire(first)  # Daytona deleted it (auto-delete, or by hand)

    page = await server.preview_get(project_id, token=complete.data.accessToken)
    assert (page.status_code, page.text) == (200, CALCULATOR_HTML)
    [second] = fake.sandboxes
    assert second != first
    on_disk = fake.host_path(second, f"{PROJECT_DIR}/calc/engine.js")
    assert on_disk.read_text() == "export const add = (a, b) => a + b;\n"


async def test_the_offline_scaffolder_works_on_daytona_too(
    make_server: Any, fake: FakeDaytona
) -> None:
    server = await daytona_server(make_server, fake)
    events = await server.stream(
        "/api/agent/stream-daytona",
        {"messages": [{"role": "user", "content": "Build a timer"}], "sandbox": "daytona"},
    )
    complete = events[-1][1]
    assert isinstance(complete, CompleteEvent), complete
    assert complete.data.projectId is not None
    page = await server.preview_get(complete.data.projectId, token=complete.data.accessToken)
    assert page.status_code == 200 and "<h1>Timer</h1>" in page.text


async def test_a_failed_run_deletes_its_daytona_sandbox(
    make_server: Any, fake: FakeDaytona
) -> None:
    server = await daytona_server(
        make_server, fake, model="factory:tests.scripted.scripted_models:writes_nothing"
    )
    events = await server.stream("/api/agent/stream-daytona", CALCULATOR)
    last = events[-1][1]
    assert last.type == "error" and "without index.html" in last.data.message
    assert last.data.sandboxId is not None
    assert fake.find_requests("DELETE", rf"^/api/sandbox/{last.data.sandboxId}$")
    assert fake.sandboxes == {}


async def test_keep_on_error_keeps_the_daytona_sandbox(make_server: Any, fake: FakeDaytona) -> None:
    server = await daytona_server(
        make_server,
        fake,
        model="factory:tests.scripted.scripted_models:writes_nothing",
        keep_on_error=True,
    )
    events = await server.stream("/api/agent/stream-daytona", CALCULATOR)
    last = events[-1][1]
    assert last.type == "error"
    assert list(fake.sandboxes) == [last.data.sandboxId]


async def test_a_wrong_key_is_an_error_event_and_a_4xx(make_server: Any, fake: FakeDaytona) -> None:
    server = await daytona_server(make_server, fake, daytona_api_key=SecretStr("wrong-key"))
    events = await server.stream("/api/agent/stream-daytona", CALCULATOR)
    last = events[-1][1]
    assert last.type == "error"
    assert last.data.code == "daytona_unauthorized"
    assert "401" in last.data.message and "DAYTONA_API_KEY" in last.data.message
    assert fake.sandboxes == {}

    response = await server.client.get(f"/api/sandboxes/{uuid.uuid4()}")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "daytona_unauthorized" and "DAYTONA_API_KEY" in error["message"]


async def test_no_key_is_a_400_before_anything_is_created(
    make_server: Any, fake: FakeDaytona
) -> None:
    server: LiveServer = await make_server(daytona_api_url=fake.url)
    response = await server.client.post("/api/agent/stream-daytona", json=CALCULATOR)
    assert response.status_code == 400
    assert "DAYTONA_API_KEY not configured" in response.json()["error"]["message"]
    assert fake.requests == []


async def test_a_create_that_times_out_is_an_error_and_leaks_nothing(
    make_server: Any, fake: FakeDaytona
) -> None:
    server = await daytona_server(make_server, fake, daytona_create_timeout_s=1.0)
    fake.create_delay = 2.5
    events = await server.stream("/api/agent/stream-daytona", CALCULATOR)
    last = events[-1][1]
    assert last.type == "error"
    assert "did not create the sandbox within 1s" in last.data.message
    assert len(fake.find_requests("POST", r"^/api/sandbox$")) == 1
    assert fake.sandboxes == {}


async def test_a_stopped_daytona_sandbox_is_started_again_by_its_project_preview(
    make_server: Any, fake: FakeDaytona
) -> None:
    server = await daytona_server(make_server, fake)
    events = await server.stream(
        "/api/agent/stream-daytona",
        {"messages": [{"role": "user", "content": "Make a clock"}], "sandbox": "daytona"},
    )
    complete = events[-1][1]
    assert isinstance(complete, CompleteEvent), complete
    sandbox_id, project_id = complete.data.sandboxId, complete.data.projectId
    assert project_id is not None
    token = fake.sandboxes[sandbox_id].labels[LABEL_PREVIEW]
    fake.stop_sandbox(sandbox_id)  # as Daytona's auto-stop would
    status = (await server.client.get(f"/api/sandboxes/{sandbox_id}/preview")).json()
    assert status["status"] == "stopped"
    # The sandbox's own preview says so; the project's starts it again and serves.
    page = await server.preview_get(sandbox_id, token=token)
    assert page.status_code == 503 and "stopped" in page.text
    page = await server.preview_get(project_id, token=complete.data.accessToken)
    assert page.status_code == 200 and "<h1>Clock</h1>" in page.text
    assert list(fake.sandboxes) == [sandbox_id]
    assert fake.sandboxes[sandbox_id].state == "started"
