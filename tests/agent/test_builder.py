"""The Builder on its own over a real sandbox: streaming, retries, timeouts and run limits."""

from __future__ import annotations

import json
from typing import Any

import pytest

from sandforge.agent.builder import Builder
from sandforge.agent.errors import ModelCallError
from sandforge.agent.models import resolve_model
from sandforge.chat import ChatMessage
from sandforge.config import Settings
from sandforge.events import Event, ToolEvent
from sandforge.sandbox import Sandbox, SandboxFileNotFound
from sandforge.templates import get_template
from tests.agent.conftest import Wire
from tests.fakes.model_apis import Text, ToolCall, Turn


async def build(
    settings: Settings,
    sandbox: Sandbox,
    prompt: str = "Make a page",
    history: tuple[ChatMessage, ...] = (),
) -> tuple[list[Event], Builder]:
    model = resolve_model(settings).model
    assert model is not None
    builder = Builder(model, get_template("web-app"), ["frontend-dev", "qa-tester"])
    events = [event async for event in builder.run(sandbox, prompt, history, sandbox=sandbox)]
    return events, builder


def write(path: str, content: str = "x\n") -> ToolCall:
    return ToolCall("write_file", {"path": path, "content": content})


def kinds(events: list[Event]) -> list[str]:
    return [
        f"tool:{e.data.file}" if isinstance(e, ToolEvent) else e.type
        for e in events
        if not (e.type == "message" and not e.data.content)
    ]


async def test_text_streams_before_each_tool_result(wire: Wire, sandbox: Sandbox) -> None:
    wire.fake.set_script(
        [
            Turn([Text("First a.txt."), write("a.txt")]),
            Turn([Text("Then b.txt."), write("b.txt")]),
            Turn(["Done."]),
        ]
    )
    events, builder = await build(wire.settings(), sandbox)

    order = [k for i, k in enumerate(kinds(events)) if i == 0 or k != kinds(events)[i - 1]]
    assert order == ["message", "tool:a.txt", "message", "tool:b.txt", "message"]
    assert builder.result.text == "First a.txt.Then b.txt.Done."
    assert (await sandbox.read_file("b.txt")) == b"x\n"
    assert builder.result.requests == 3 and builder.result.tool_calls == 2
    assert builder.result.tokens_used == 3 * (10 + 5)


async def test_history_reaches_the_model(wire: Wire, sandbox: Sandbox) -> None:
    wire.fake.set_script([Turn(["Made it blue."])])
    history = (
        ChatMessage(role="user", content="Make a page"),
        ChatMessage(role="assistant", content="Made a page."),
    )
    await build(wire.settings(), sandbox, "Now make it blue", history)

    body = wire.fake.requests[0].json
    messages = [m for m in body["messages"] if m["role"] != "system"]
    assert [m["role"] for m in messages] == ["user", "assistant", "user"]
    assert "Made a page." in str(messages[1]["content"])
    assert "Now make it blue" in str(messages[2]["content"])


async def test_cut_stream_text_is_not_kept_twice(wire: Wire, sandbox: Sandbox) -> None:
    answer = Turn(["All finished: the page is ready."])
    served: list[Turn] = []

    def script(body: dict[str, Any]) -> Turn:
        if not served:
            wire.fake.cut_stream_after(5)
        served.append(answer)
        return answer

    wire.fake.set_script(script)
    events, builder = await build(wire.settings(), sandbox)

    assert [r.cut for r in wire.fake.requests] == [True, False]
    assert builder.result.retries == 1
    # The client saw the partial text stream out, then the answer again; the turn's text is
    # the answer once.
    streamed = "".join(e.data.content for e in events if e.type == "message")
    partial = streamed.removesuffix("All finished: the page is ready.")
    assert partial and "All finished: the page is ready.".startswith(partial)
    assert builder.result.text == "All finished: the page is ready."


async def test_retry_count_resets_after_a_success(wire: Wire, sandbox: Sandbox) -> None:
    turns = [Turn([write("a.txt")]), Turn(["Done."])]
    served: list[Turn] = []

    def script(body: dict[str, Any]) -> Turn:
        turn = turns[len(served)]
        if not served:
            wire.fake.fail_next(500)  # fails the request after this one
        served.append(turn)
        return turn

    wire.fake.fail_next(500)
    wire.fake.set_script(script)
    _, builder = await build(wire.settings(model_max_retries=1), sandbox)

    assert [r.status for r in wire.fake.requests] == [500, 200, 500, 200]
    assert builder.result.retries == 2
    assert builder.result.text == "Done."


async def test_a_silent_model_times_out_and_is_retried(wire: Wire, sandbox: Sandbox) -> None:
    wire.fake.set_script([Turn(["late"]), Turn(["late"])])
    wire.fake.event_delay = 1.0
    with pytest.raises(ModelCallError) as info:
        await build(wire.settings(model_timeout_s=0.2, model_max_retries=1), sandbox)

    assert info.value.code == "model_timeout"
    assert "did not answer in time" in str(info.value) and "after 1 retry" in str(info.value)
    assert "SANDFORGE_MODEL_TIMEOUT_S" in str(info.value)
    assert wire.fake.request_count == 2


@pytest.mark.parametrize(
    ("status", "code", "words"),
    [
        (400, "model_rejected", "rejected the request (HTTP 400"),
        (404, "model_not_found", "SANDFORGE_MODEL"),
        (403, "model_auth", "refused access (HTTP 403"),
    ],
)
async def test_requests_that_cannot_succeed_are_not_retried(
    wire: Wire, sandbox: Sandbox, status: int, code: str, words: str
) -> None:
    wire.fake.set_script([Turn(["never"])])
    wire.fake.fail_always(status)
    with pytest.raises(ModelCallError) as info:
        await build(wire.settings(), sandbox)
    assert info.value.code == code
    assert words in str(info.value)
    assert wire.fake.request_count == 1


async def test_tool_call_limit(wire: Wire, sandbox: Sandbox) -> None:
    wire.fake.set_script(
        [Turn([write("a.txt")]), Turn([write("b.txt"), write("c.txt")]), Turn(["Done."])]
    )
    events, builder = await build(wire.settings(max_tool_calls=2), sandbox)

    limit = builder.result.limit_reached
    assert limit is not None and "limit of 2 tool calls (SANDFORGE_MAX_TOOL_CALLS)" in limit
    assert events[-1].type == "progress" and events[-1].data.message == limit
    assert (await sandbox.read_file("a.txt")) == b"x\n"
    # The call that would pass the limit is not run, nor is its sibling.
    for path in ("b.txt", "c.txt"):
        with pytest.raises(SandboxFileNotFound):
            await sandbox.read_file(path)


async def test_token_limit(wire: Wire, sandbox: Sandbox) -> None:
    wire.fake.set_script(
        [Turn([write("a.txt")], input_tokens=600), Turn([write("b.txt")], input_tokens=900)]
    )
    _, builder = await build(wire.settings(max_run_tokens=1000), sandbox)

    limit = builder.result.limit_reached
    assert limit is not None and "limit of 1,000 tokens (SANDFORGE_MAX_RUN_TOKENS)" in limit
    # The limit is checked as usage streams in: Anthropic reports the prompt's size when the
    # stream opens (with 1 output token so far), so the stream stops right there.
    second_output = 1 if wire.name == "anthropic" else 5
    assert builder.result.tokens_used == 600 + 5 + 900 + second_output
    assert (await sandbox.read_file("a.txt")) == b"x\n"
    with pytest.raises(SandboxFileNotFound):
        await sandbox.read_file("b.txt")


async def test_wall_time_limit(wire: Wire, sandbox: Sandbox) -> None:
    wire.fake.set_script(lambda body: Turn([Text("working"), write("a.txt")]))
    wire.fake.event_delay = 0.05
    _, builder = await build(wire.settings(max_run_seconds=1.0), sandbox)

    limit = builder.result.limit_reached
    assert limit is not None and "SANDFORGE_MAX_RUN_SECONDS" in limit
    assert (await sandbox.read_file("a.txt")) == b"x\n"


async def test_request_limit_argument_still_works(wire: Wire, sandbox: Sandbox) -> None:
    wire.fake.set_script(lambda body: Turn([write("a.txt")]))
    model = resolve_model(wire.settings()).model
    assert model is not None
    builder = Builder(model, get_template("web-app"), [], request_limit=3)
    [event async for event in builder.run(sandbox, "go", sandbox=sandbox)]
    assert wire.fake.request_count == 3
    assert builder.result.limit_reached is not None
    assert "limit of 3 model requests" in builder.result.limit_reached


async def test_without_a_sandbox_the_model_is_offered_no_command_tool(
    wire: Wire, sandbox: Sandbox
) -> None:
    """The persistent flow (files only, no sandbox): a run_command there could only fail."""
    wire.fake.set_script([Turn([write("a.txt")]), Turn(["Done."])])
    model = resolve_model(wire.settings()).model
    assert model is not None
    builder = Builder(model, get_template("web-app"), ["frontend-dev"])
    events = [event async for event in builder.run(sandbox, "Make a page", sandbox=None)]

    assert "tool:a.txt" in kinds(events)
    first = wire.fake.requests[0].json
    assert tools_offered(first) == {
        "list_files",
        "read_file",
        "write_file",
        "edit_file",
        "delete_file",
    }
    assert "run_command" not in json.dumps(first.get("system") or first["messages"][0])

    wire.fake.set_script([Turn(["Done."])])
    await build(wire.settings(), sandbox)
    assert "run_command" in tools_offered(wire.fake.requests[-1].json)


def tools_offered(request: dict[str, Any]) -> set[str]:
    """The tool names of a request, on either wire (Anthropic's, OpenAI's)."""
    return {tool.get("name") or tool["function"]["name"] for tool in request["tools"]}
