"""Whole generations through the pipeline, on the Anthropic and the OpenAI wire.

The official SDKs talk to local fakes that speak each provider's real streaming format; the
files land in a real bwrap sandbox and the dev server really starts.
"""

from __future__ import annotations

from typing import Any

from sandforge.events import PROGRESS_ORDER, CompleteEvent, ErrorEvent, Event, ToolEvent
from tests.agent.conftest import RunPipeline, Wire
from tests.fakes.model_apis import Text, ToolCall, Turn

HTML = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Hello</title><script src="app.js" defer></script></head>
<body><h1 id="greeting">Hello</h1></body>
</html>
"""
JS = "document.getElementById('greeting').textContent += ', world';\n"

BUILD = [
    Turn(
        [Text("I'll build a hello page."), ToolCall("list_files", {"path": "."})],
        input_tokens=2100,
        output_tokens=30,
        cache_write_tokens=2000,
    ),
    Turn(
        [
            ToolCall("write_file", {"path": "index.html", "content": HTML}),
            ToolCall("write_file", {"path": "app.js", "content": JS}),
        ],
        input_tokens=2400,
        output_tokens=220,
        cache_read_tokens=2000,
    ),
    Turn(
        [ToolCall("edit_file", {"path": "index.html", "search": "<h1", "replace": "<h1 class=x"})],
        input_tokens=2700,
        output_tokens=40,
        cache_read_tokens=2000,
    ),
    Turn(
        ["Done: ", "a page that says hello."],
        input_tokens=2800,
        output_tokens=12,
        cache_read_tokens=2000,
    ),
]
TOOL_NAMES = {"list_files", "read_file", "write_file", "edit_file", "delete_file", "run_command"}


def reported(turns: list[Turn]) -> int:
    """Input (cached included) plus output tokens, as the fake reported them."""
    return sum(t.input_tokens + t.output_tokens for t in turns)


def statuses(events: list[Event]) -> list[str]:
    """The progress statuses in order; a status may repeat (retries, the rendered check)."""
    seen: list[str] = []
    for e in events:
        if e.type == "progress" and (not seen or seen[-1] != e.data.status):
            seen.append(e.data.status)
    return seen


def tools(events: list[Event]) -> list[tuple[str, str]]:
    return [(e.data.action, e.data.file) for e in events if isinstance(e, ToolEvent)]


def text(events: list[Event]) -> str:
    return "".join(e.data.content for e in events if e.type == "message")


def complete(events: list[Event]) -> CompleteEvent:
    final = events[-1]
    assert isinstance(final, CompleteEvent), final
    return final


def failure(events: list[Event]) -> ErrorEvent:
    final = events[-1]
    assert isinstance(final, ErrorEvent), final
    return final


async def test_full_generation_writes_files_through_tool_calls(
    wire: Wire, pipeline: RunPipeline
) -> None:
    wire.fake.set_script(BUILD)
    run = await pipeline(wire.settings())
    events = run.events

    assert statuses(events) == list(PROGRESS_ORDER)
    assert all(e.data.delta for e in events if e.type == "message")
    assert text(events) == "I'll build a hello page.Done: a page that says hello."
    # The starter is written first, so the model's writes are updates.
    assert tools(events) == [
        ("update", "index.html"),
        ("update", "app.js"),
        ("update", "index.html"),
    ]
    assert await run.read("index.html") == HTML.replace("<h1", "<h1 class=x")
    assert await run.read("app.js") == JS

    data = complete(events).data
    assert data.success and data.model == wire.model
    assert data.tokensUsed == reported(BUILD)
    assert data.cacheReadTokens == sum(t.cache_read_tokens for t in BUILD)
    assert data.modelRequests == len(BUILD)
    assert data.limitReached is None
    assert wire.fake.errors == []

    requests = wire.fake.requests
    assert [r.status for r in requests] == [200] * len(BUILD)
    assert all(r.stream for r in requests)
    first = requests[0].json
    if wire.name == "anthropic":
        assert {t["name"] for t in first["tools"]} == TOOL_NAMES
        # Prompt caching of the system prompt and the tool definitions.
        assert first["system"][-1]["cache_control"]["type"] == "ephemeral"
        assert first["tools"][-1]["cache_control"]["type"] == "ephemeral"
        system = " ".join(block["text"] for block in first["system"])
        assert data.cacheWriteTokens == 2000
    else:
        assert {t["function"]["name"] for t in first["tools"]} == TOOL_NAMES
        assert first["stream_options"]["include_usage"] is True
        system = first["messages"][0]["content"]
        assert data.cacheWriteTokens == 0
    assert "senior frontend developer" in system
    assert "Web app (HTML, CSS, JavaScript)" in system


async def test_429_then_success(wire: Wire, pipeline: RunPipeline) -> None:
    wire.fake.set_script(BUILD)
    wire.fake.fail_next(429, retry_after=0.05)
    run = await pipeline(wire.settings())

    assert [r.status for r in wire.fake.requests] == [429] + [200] * len(BUILD)
    # The retried request is the same request: the prompt is in it once.
    first, retried = wire.fake.requests[:2]
    assert retried.json["messages"] == first.json["messages"]
    assert [m["role"] for m in retried.json["messages"]].count("user") == 1
    retries = [
        e.data.message for e in run.events if e.type == "progress" and "retry" in e.data.message
    ]
    assert len(retries) == 1 and "HTTP 429" in retries[0] and "retry 1 of 5" in retries[0]
    # Retry-After was honoured: the wait is the 0.05 s the provider asked for, not the
    # (much shorter) backoff configured for the tests.
    assert "retrying in 0.05s" in retries[0]
    data = complete(run.events).data
    assert data.tokensUsed == reported(BUILD)
    assert await run.read("app.js") == JS


async def test_500_forever_ends_in_an_error_event(wire: Wire, pipeline: RunPipeline) -> None:
    wire.fake.set_script(BUILD)
    wire.fake.fail_always(500)
    run = await pipeline(wire.settings(model_max_retries=2))

    assert [r.status for r in wire.fake.requests] == [500, 500, 500]
    data = failure(run.events).data
    assert data.code == "model_unavailable"
    label = "Anthropic API" if wire.name == "anthropic" else "OpenAI-compatible server"
    assert label in data.message and wire.fake.url in data.message
    assert "HTTP 500" in data.message and "after 2 retries" in data.message
    assert "try again later" in data.message
    assert data.sandboxId is not None
    assert data.stack is None


async def test_401_names_the_variable_to_set(wire: Wire, pipeline: RunPipeline) -> None:
    wire.fake.set_script(BUILD)
    run = await pipeline(wire.settings(api_key="sk-wrong"))

    assert [r.status for r in wire.fake.requests] == [401]  # never retried
    data = failure(run.events).data
    assert data.code == "model_auth"
    assert "HTTP 401" in data.message and "rejected the API key" in data.message
    assert wire.key_env in data.message


async def test_stream_cut_in_the_middle_is_resumed(wire: Wire, pipeline: RunPipeline) -> None:
    writes_app = Turn(
        [Text("Now the script file."), ToolCall("write_file", {"path": "app.js", "content": JS})],
        input_tokens=2400,
        output_tokens=60,
    )
    turns = [
        Turn([ToolCall("write_file", {"path": "index.html", "content": HTML})], input_tokens=2000),
        writes_app,
        writes_app,
        Turn(["All done."], input_tokens=2600, output_tokens=4),
    ]
    served: list[Turn] = []

    def script(body: dict[str, Any]) -> Turn:
        turn = turns[len(served)]
        if len(served) == 1:
            wire.fake.cut_stream_after(5)  # in the middle of the text, before the tool call
        served.append(turn)
        return turn

    wire.fake.set_script(script)
    run = await pipeline(wire.settings())
    events = run.events

    requests = wire.fake.requests
    assert [r.status for r in requests] == [200, 200, 200, 200]
    assert [r.cut for r in requests] == [False, True, False, False]
    retry = [m for m in (e.data.message for e in events if e.type == "progress") if "retry" in m]
    assert len(retry) == 1 and "the connection dropped" in retry[0]
    # Resumed from the finished tool call: index.html is written once, app.js once.
    assert tools(events) == [("update", "index.html"), ("update", "app.js")]
    assert await run.read("app.js") == JS
    # The resumed request carries the first tool result, not the cut-off response.
    resumed = requests[2].json["messages"]
    assert resumed == requests[1].json["messages"]

    data = complete(events).data
    complete_turns = [turns[0], turns[2], turns[3]]
    if wire.name == "anthropic":
        # Anthropic reports the prompt's usage when the stream opens (message_start), so the
        # cut-off request was billed: its input tokens and the 1 output token reported so far.
        assert data.tokensUsed == reported(complete_turns) + writes_app.input_tokens + 1
    else:
        # OpenAI reports usage at the end of the stream, which the cut request never reached.
        assert data.tokensUsed == reported(complete_turns)


async def test_request_limit_keeps_the_files_written_so_far(
    wire: Wire, pipeline: RunPipeline
) -> None:
    wire.fake.set_script(BUILD)
    run = await pipeline(wire.settings(max_model_requests=2))
    events = run.events

    assert wire.fake.request_count == 2
    assert wire.fake.remaining_turns == len(BUILD) - 2
    note = "this run reached its limit of 2 model requests (SANDFORGE_MAX_MODEL_REQUESTS)"
    assert any(note in e.data.message for e in events if e.type == "progress")
    # The run ends with the app so far, live: the files of the first two turns are kept.
    assert tools(events) == [("update", "index.html"), ("update", "app.js")]
    assert await run.read("index.html") == HTML
    data = complete(events).data
    assert data.success
    assert data.limitReached is not None and note in data.limitReached
    assert "files written so far are kept" in data.limitReached
    assert data.tokensUsed == reported(BUILD[:2])
    assert data.modelRequests == 2
