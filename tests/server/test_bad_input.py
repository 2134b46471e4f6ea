"""Bad requests answer 400 with {"error": {"code", "message"}} and create nothing."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import LiveServer

PROMPT = [{"role": "user", "content": "Create a calculator"}]

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
