"""Bad requests answer 400 with {"error": {"code", "message"}} and create nothing; what the
server itself fails at answers the same shape, never a bare text 500."""

from __future__ import annotations

import errno
import json
import os
import sqlite3
import subprocess
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import httpx
import pytest

from sandforge.events import CompleteData
from tests.conftest import LiveServer

PROMPT = [{"role": "user", "content": "Create a calculator"}]
DEEP = 100_000
PAST_64_BITS = [str(2**63), str(2**64), "9" * 40]
"""Past what SQLite (a signed 64-bit integer) and a C long can hold."""


def escaped(body: Any) -> bytes:
    """`body` as JSON with every non-ASCII character escaped (`"\\ud800"`), the way a client
    sends text it cannot encode as UTF-8."""
    return json.dumps(body, ensure_ascii=True).encode()


BAD_BODIES: list[tuple[str, Any, str]] = [
    ("not json", b"{messages: nope", "invalid_json"),
    ("a list", [], "invalid_request"),
    ("no messages", {"projectType": "web-app"}, "invalid_request"),
    ("empty messages", {"messages": []}, "invalid_request"),
    (
        "last from assistant",
        {"messages": [*PROMPT, {"role": "assistant", "content": "ok"}]},
        "invalid_request",
    ),
    ("empty prompt", {"messages": [{"role": "user", "content": "   "}]}, "invalid_request"),
    ("unknown role", {"messages": [{"role": "wizard", "content": "x"}]}, "invalid_request"),
    ("unknown project type", {"messages": PROMPT, "projectType": "cobol"}, "invalid_request"),
    ("unknown agent", {"messages": PROMPT, "agents": ["hacker"]}, "invalid_request"),
    ("messages not a list", {"messages": "Create a calculator"}, "invalid_request"),
    ("content not a string", {"messages": [{"role": "user", "content": 42}]}, "invalid_request"),
    ("agents not a list", {"messages": PROMPT, "agents": "frontend-dev"}, "invalid_request"),
    ("projectType not a string", {"messages": PROMPT, "projectType": 3}, "invalid_request"),
    ("unknown provider", {"messages": PROMPT, "sandbox": "aws"}, "invalid_request"),
    ("nested too deeply", b"[" * DEEP + b"]" * DEEP, "invalid_json"),
    (
        "nested too deeply in a field",
        b'{"messages": [], "extra": ' + b"[" * DEEP + b"]" * DEEP + b"}",
        "invalid_json",
    ),
    (
        "lone surrogate in the prompt",
        escaped({"messages": [{"role": "user", "content": "a \ud800 calculator"}]}),
        "invalid_request",
    ),
    (
        "NUL in the prompt",
        escaped({"messages": [{"role": "user", "content": "a calculator\x00"}]}),
        "invalid_request",
    ),
    (
        "lone surrogate in projectId",
        escaped({"messages": PROMPT, "projectId": "\ud800"}),
        "invalid_request",
    ),
    (
        "lone surrogate in sandboxId",
        escaped({"messages": PROMPT, "sandboxId": "\ud800"}),
        "invalid_request",
    ),
    (
        "prompt too large",
        {"messages": [{"role": "user", "content": "x" * 20_001}]},
        "prompt_too_large",
    ),
]


@pytest.mark.parametrize("path", ["/api/agent/stream-daytona", "/api/agent/stream", "/api/runs"])
@pytest.mark.parametrize(("case", "body", "code"), BAD_BODIES, ids=[c for c, _, _ in BAD_BODIES])
async def test_bad_input_is_a_400_that_creates_nothing(
    server: LiveServer, path: str, case: str, body: Any, code: str
) -> None:
    if isinstance(body, bytes):
        response = await server.client.post(
            path, content=body, headers={"content-type": "application/json"}
        )
    else:
        response = await server.client.post(path, json=body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == code
    assert error["message"]
    assert server.sandbox_dirs() == []
    assert server.services.supervisor.runs == {}


async def test_error_messages_say_what_is_wrong(server: LiveServer) -> None:
    response = await server.client.post(
        "/api/agent/stream-daytona", json={"messages": PROMPT, "projectType": "cobol"}
    )
    message = response.json()["error"]["message"]
    assert "cobol" in message and "web-app" in message
    too_big = await server.client.post(
        "/api/agent/stream-daytona", json={"messages": [{"role": "user", "content": "x" * 20_001}]}
    )
    assert "20000" in too_big.json()["error"]["message"]


async def test_daytona_without_a_key_gets_the_seeds_message(server: LiveServer) -> None:
    response = await server.client.post(
        "/api/agent/stream-daytona", json={"messages": PROMPT, "sandbox": "daytona"}
    )
    assert response.status_code == 400
    assert response.json()["error"]["message"].startswith("DAYTONA_API_KEY not configured")
    assert server.services.supervisor.runs == {}


async def test_daytona_as_the_default_without_a_key(make_server: Any) -> None:
    server: LiveServer = await make_server(sandbox_provider="daytona")
    response = await server.client.post("/api/agent/stream-daytona", json={"messages": PROMPT})
    assert response.status_code == 400
    assert "DAYTONA_API_KEY not configured" in response.json()["error"]["message"]


async def test_unknown_run_and_sandbox_are_404s(server: LiveServer) -> None:
    for path in ("/api/runs/nope", "/api/runs/nope/events", "/api/sandboxes/sb0000"):
        response = await server.client.get(path)
        assert response.status_code == 404
        assert response.json()["error"]["code"] in ("run_not_found", "sandbox_not_found")


async def finished_run(server: LiveServer) -> CompleteData:
    events = await server.stream("/api/agent/stream-daytona", {"messages": PROMPT})
    complete = events[-1][1]
    assert complete.type == "complete", complete
    return complete.data


def assert_error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, (response.request.url, response.text)
    assert response.headers["content-type"] == "application/json", response.text
    error = response.json()["error"]
    assert error["code"] == code and error["message"], error


async def test_a_last_event_id_that_is_not_an_event_number_is_a_400(server: LiveServer) -> None:
    run = await finished_run(server)
    path = f"/api/runs/{run.runId}/events"
    resumed = await server.client.get(path, headers={"last-event-id": "3"})
    assert resumed.status_code == 200 and resumed.text.startswith("id: 4\n"), resumed.text
    # b"\xb2" is "²" read as Latin-1 (how headers are decoded): str.isdigit() accepts it.
    values: list[str | bytes] = [b"\xb2", "²".encode(), "-1", "1e3", "", *PAST_64_BITS]
    for value in values:
        response = await server.client.get(path, headers={"last-event-id": value})
        assert_error(response, 400, "invalid_last_event_id")
        # `?after=` wins over the header, but does not make a bad one acceptable.
        response = await server.client.get(
            path, params={"after": 0}, headers={"last-event-id": value}
        )
        assert_error(response, 400, "invalid_last_event_id")


async def test_numbers_past_64_bits_are_400s(server: LiveServer) -> None:
    run = await finished_run(server)
    project = f"/api/projects/{run.projectId}"
    for number in PAST_64_BITS:
        for response in (
            await server.client.post(f"{project}/versions/{number}/restore"),
            await server.client.get(f"{project}/diff", params={"from": 1, "to": number}),
            await server.client.get(f"{project}/diff", params={"from": number, "to": 1}),
            await server.client.get(f"/api/runs/{run.runId}/events", params={"after": number}),
        ):
            assert_error(response, 400, "invalid_request")
    versions = (await server.client.get(f"{project}/versions")).json()["versions"]
    assert [v["number"] for v in versions] == [1]


async def test_a_preview_port_out_of_range_is_a_400(server: LiveServer) -> None:
    run = await finished_run(server)
    path = f"/api/sandboxes/{run.sandboxId}/preview"
    assert (await server.client.get(path, params={"port": 3000})).json()["status"] == "ready"
    for port in (-1, 0, 65536, 2**64):
        assert_error(await server.client.get(path, params={"port": port}), 400, "invalid_request")


async def test_an_unexpected_failure_answers_a_json_500(server: LiveServer) -> None:
    # A store that lost a table: nothing the API expects, so no handler of its own catches it.
    with closing(sqlite3.connect(server.settings.data_dir / "sandforge.db")) as db:
        db.execute("ALTER TABLE projects RENAME TO projects_lost")
    response = await server.client.get("/api/projects")
    assert_error(response, 500, "internal")
    assert "log" in response.json()["error"]["message"]


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A filesystem of its own (a 16 MiB tmpfs) that a test can fill."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root (the local sandbox's disks do too)")
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", mount_point], check=True)
    yield mount_point
    subprocess.run(["umount", "--lazy", mount_point], check=True)


def fill(disk: Path) -> Path:
    filler = disk / "filler"
    with open(filler, "wb", buffering=0) as f:
        try:
            while f.write(bytes(1 << 16)):
                pass
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    return filler


async def test_a_full_disk_answers_507(small_disk: Path, make_server: Any) -> None:
    server: LiveServer = await make_server(data_dir=small_disk / "data")
    filler = fill(small_disk)
    response = await server.client.post("/api/runs", json={"messages": PROMPT})
    assert_error(response, 507, "insufficient_storage")
    assert "disk is full" in response.json()["error"]["message"]
    filler.unlink()
    assert (await server.client.get("/api/projects")).json() == {"projects": []}
