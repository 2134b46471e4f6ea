"""The fake model APIs speak a wire the real SDKs, and pydantic-ai on top of them, accept."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx2
import openai
import pytest
from pydantic_ai import Agent, AgentRunResultEvent
from pydantic_ai.exceptions import (
    ModelAPIError,
    ModelAuthenticationError,
    ModelConnectionError,
    ModelHTTPError,
)
from pydantic_ai.messages import PartDeltaEvent, PartStartEvent, TextPart, TextPartDelta
from pydantic_ai.models import Model
from pydantic_ai.models.anthropic import AnthropicModel, AnthropicModelSettings
from pydantic_ai.models.openai import OpenAIChatModel
from pydantic_ai.providers.anthropic import AnthropicProvider
from pydantic_ai.providers.openai import OpenAIProvider

from tests.fakes.model_apis import FakeAnthropic, FakeModelServer, FakeOpenAI, Text, ToolCall, Turn

TOOL_TURN = Turn(
    [
        Text("Let me write the page."),
        ToolCall("write_file", {"path": "index.html", "content": "<h1>Hello, world</h1>"}),
    ],
    input_tokens=1200,
    output_tokens=42,
    cache_read_tokens=1000,
)
FINAL_TURN = Turn(
    ["All done: ", "the page says hello."],
    input_tokens=1300,
    output_tokens=9,
    cache_read_tokens=1200,
)


@pytest.fixture
def fake_anthropic() -> Iterator[FakeAnthropic]:
    with FakeAnthropic([TOOL_TURN, FINAL_TURN]) as fake:
        yield fake


@pytest.fixture
def fake_openai() -> Iterator[FakeOpenAI]:
    with FakeOpenAI([TOOL_TURN, FINAL_TURN]) as fake:
        yield fake


def _user(text: str) -> Any:
    return [{"role": "user", "content": text}]


# ------------------------------------------------------------------------------------------------
# Anthropic SDK
# ------------------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_anthropic_sdk_streams_text_and_tool_use(fake_anthropic: FakeAnthropic) -> None:
    client = anthropic.AsyncAnthropic(
        base_url=fake_anthropic.url, api_key=fake_anthropic.api_key, max_retries=0
    )
    event_types: list[str] = []
    json_deltas: list[str] = []
    async with client.messages.stream(
        model="claude-sonnet-4-5",
        max_tokens=1024,
        system=[
            {"type": "text", "text": "You build apps.", "cache_control": {"type": "ephemeral"}}
        ],
        messages=_user("Make a page"),
        tools=[
            {
                "name": "write_file",
                "description": "Write a file",
                "input_schema": {"type": "object"},
            }
        ],
    ) as stream:
        async for event in stream:
            event_types.append(event.type)
            if event.type == "content_block_delta" and event.delta.type == "input_json_delta":
                json_deltas.append(event.delta.partial_json)
        message = await stream.get_final_message()
    await client.close()

    assert message.stop_reason == "tool_use"
    assert message.model == "claude-sonnet-4-5"
    text, tool = message.content
    assert text.type == "text" and text.text == "Let me write the page."
    assert tool.type == "tool_use" and tool.name == "write_file"
    assert tool.input == {"path": "index.html", "content": "<h1>Hello, world</h1>"}
    assert tool.id.startswith("toolu_")
    assert message.usage.input_tokens == 200
    assert message.usage.cache_read_input_tokens == 1000
    assert message.usage.cache_creation_input_tokens == 0
    assert message.usage.output_tokens == 42
    assert len([d for d in json_deltas if d]) >= 3
    assert event_types[0] == "message_start" and "message_stop" in event_types

    (request,) = fake_anthropic.requests
    assert request.path == "/v1/messages" and request.stream and request.status == 200
    assert request.headers["authorization"] == f"Bearer {fake_anthropic.api_key}"
    assert request.json["system"][0]["cache_control"] == {"type": "ephemeral"}
    assert request.turn is TOOL_TURN
    assert fake_anthropic.remaining_turns == 1


@pytest.mark.asyncio
async def test_anthropic_sdk_non_streaming(fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.set_script([FINAL_TURN])
    client = anthropic.AsyncAnthropic(
        base_url=fake_anthropic.url, api_key=fake_anthropic.api_key, max_retries=0
    )
    message = await client.messages.create(
        model="claude-sonnet-4-5", max_tokens=64, messages=_user("hi")
    )
    await client.close()
    assert [block.text for block in message.content if block.type == "text"] == [
        "All done: ",
        "the page says hello.",
    ]
    assert message.stop_reason == "end_turn"
    assert (message.usage.input_tokens, message.usage.cache_read_input_tokens) == (100, 1200)


@pytest.mark.asyncio
async def test_anthropic_sdk_wrong_key(fake_anthropic: FakeAnthropic) -> None:
    client = anthropic.AsyncAnthropic(
        base_url=fake_anthropic.url, api_key="sk-wrong", max_retries=0
    )
    with pytest.raises(anthropic.AuthenticationError) as info:
        await client.messages.create(model="claude-sonnet-4-5", max_tokens=64, messages=_user("hi"))
    await client.close()
    assert info.value.status_code == 401
    assert info.value.body == {
        "type": "error",
        "error": {"type": "authentication_error", "message": "invalid x-api-key"},
        "request_id": info.value.body["request_id"],  # type: ignore[index]
    }
    assert fake_anthropic.requests[0].status == 401
    assert fake_anthropic.remaining_turns == 2


@pytest.mark.asyncio
async def test_anthropic_sdk_retries_429(fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.fail_next(429, retry_after=0.01)
    client = anthropic.AsyncAnthropic(
        base_url=fake_anthropic.url, api_key=fake_anthropic.api_key, max_retries=2
    )
    message = await client.messages.create(
        model="claude-sonnet-4-5", max_tokens=64, messages=_user("hi")
    )
    await client.close()
    assert message.stop_reason == "tool_use"
    assert [r.status for r in fake_anthropic.requests] == [429, 200]
    assert fake_anthropic.request_count == 2


@pytest.mark.asyncio
async def test_anthropic_sdk_cut_stream(fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.cut_stream_after(4)
    client = anthropic.AsyncAnthropic(
        base_url=fake_anthropic.url, api_key=fake_anthropic.api_key, max_retries=0
    )
    seen: list[str] = []
    # anthropic>=2 lets a transport error out of a stream unwrapped; openai wraps it in
    # APIConnectionError.
    with pytest.raises(httpx2.RemoteProtocolError):
        async with client.messages.stream(
            model="claude-sonnet-4-5", max_tokens=64, messages=_user("hi")
        ) as stream:
            async for event in stream:
                seen.append(event.type)
    await client.close()
    assert seen[0] == "message_start" and "message_stop" not in seen
    assert fake_anthropic.requests[0].cut


@pytest.mark.asyncio
async def test_anthropic_sdk_fail_always(fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.fail_always(500)
    client = anthropic.AsyncAnthropic(
        base_url=fake_anthropic.url, api_key=fake_anthropic.api_key, max_retries=1
    )
    with pytest.raises(anthropic.InternalServerError):
        await client.messages.create(model="claude-sonnet-4-5", max_tokens=64, messages=_user("hi"))
    fake_anthropic.clear_failures()
    message = await client.messages.create(
        model="claude-sonnet-4-5", max_tokens=64, messages=_user("hi")
    )
    await client.close()
    assert message.stop_reason == "tool_use"
    assert [r.status for r in fake_anthropic.requests] == [500, 500, 200]


# ------------------------------------------------------------------------------------------------
# OpenAI SDK
# ------------------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_openai_sdk_streams_text_and_tool_calls(fake_openai: FakeOpenAI) -> None:
    client = openai.AsyncOpenAI(
        base_url=fake_openai.url, api_key=fake_openai.api_key, max_retries=0
    )
    stream = await client.chat.completions.create(
        model="gpt-4.1",
        messages=_user("Make a page"),
        tools=[
            {
                "type": "function",
                "function": {"name": "write_file", "parameters": {"type": "object"}},
            }
        ],
        stream=True,
        stream_options={"include_usage": True},
    )
    role = None
    content: list[str] = []
    calls: dict[int, dict[str, Any]] = {}
    finish_reason = None
    usage = None
    arg_chunks = 0
    async for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            delta = choice.delta
            role = role or delta.role
            if delta.content:
                content.append(delta.content)
            for call in delta.tool_calls or []:
                entry = calls.setdefault(call.index, {"id": None, "name": "", "arguments": ""})
                entry["id"] = entry["id"] or call.id
                if call.function and call.function.name:
                    entry["name"] += call.function.name
                if call.function and call.function.arguments:
                    entry["arguments"] += call.function.arguments
                    arg_chunks += 1
            finish_reason = choice.finish_reason or finish_reason
    await client.close()

    assert role == "assistant"
    assert "".join(content) == "Let me write the page."
    assert finish_reason == "tool_calls"
    assert calls[0]["name"] == "write_file" and calls[0]["id"].startswith("call_")
    assert json.loads(calls[0]["arguments"]) == {
        "path": "index.html",
        "content": "<h1>Hello, world</h1>",
    }
    assert arg_chunks >= 3
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (1200, 42, 1242)
    assert (
        usage.prompt_tokens_details is not None
        and usage.prompt_tokens_details.cached_tokens == 1000
    )

    (request,) = fake_openai.requests
    assert request.path == "/v1/chat/completions"
    assert request.headers["authorization"] == f"Bearer {fake_openai.api_key}"
    assert request.json["tools"][0]["function"]["name"] == "write_file"


@pytest.mark.asyncio
async def test_openai_sdk_non_streaming(fake_openai: FakeOpenAI) -> None:
    client = openai.AsyncOpenAI(
        base_url=fake_openai.url, api_key=fake_openai.api_key, max_retries=0
    )
    completion = await client.chat.completions.create(model="gpt-4.1", messages=_user("hi"))
    await client.close()
    message = completion.choices[0].message
    assert message.content == "Let me write the page."
    assert message.tool_calls is not None
    call = message.tool_calls[0]
    assert call.type == "function"
    assert call.function.name == "write_file"
    assert json.loads(call.function.arguments)["path"] == "index.html"
    assert completion.usage is not None and completion.usage.prompt_tokens == 1200


@pytest.mark.asyncio
async def test_openai_sdk_wrong_key(fake_openai: FakeOpenAI) -> None:
    client = openai.AsyncOpenAI(base_url=fake_openai.url, api_key="sk-wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as info:
        await client.chat.completions.create(model="gpt-4.1", messages=_user("hi"))
    await client.close()
    assert info.value.status_code == 401
    assert info.value.code == "invalid_api_key"
    assert info.value.type == "invalid_request_error"


@pytest.mark.asyncio
async def test_openai_sdk_retries_429(fake_openai: FakeOpenAI) -> None:
    fake_openai.fail_next(429, retry_after=0.01)
    client = openai.AsyncOpenAI(
        base_url=fake_openai.url, api_key=fake_openai.api_key, max_retries=2
    )
    stream = await client.chat.completions.create(
        model="gpt-4.1", messages=_user("hi"), stream=True, stream_options={"include_usage": True}
    )
    chunks = [chunk async for chunk in stream]
    await client.close()
    assert chunks[-1].usage is not None and chunks[-1].choices == []
    assert [r.status for r in fake_openai.requests] == [429, 200]


@pytest.mark.asyncio
async def test_openai_sdk_cut_stream(fake_openai: FakeOpenAI) -> None:
    fake_openai.cut_stream_after(3)
    client = openai.AsyncOpenAI(
        base_url=fake_openai.url, api_key=fake_openai.api_key, max_retries=0
    )
    stream = await client.chat.completions.create(
        model="gpt-4.1", messages=_user("hi"), stream=True
    )
    received = 0
    with pytest.raises(openai.APIConnectionError):
        async for _ in stream:
            received += 1
    await client.close()
    assert received == 3


# ------------------------------------------------------------------------------------------------
# pydantic-ai on top of the SDKs
# ------------------------------------------------------------------------------------------------


def _anthropic_model(fake: FakeAnthropic, api_key: str | None = None) -> AnthropicModel:
    return AnthropicModel(
        "claude-sonnet-4-5",
        provider=AnthropicProvider(base_url=fake.url, api_key=api_key or fake.api_key),
    )


def _openai_model(fake: FakeOpenAI, api_key: str | None = None) -> OpenAIChatModel:
    return OpenAIChatModel(
        "gpt-4.1", provider=OpenAIProvider(base_url=fake.url, api_key=api_key or fake.api_key)
    )


def _make_agent(model: Model, calls: list[dict[str, str]]) -> Agent[None, str]:
    agent = Agent(model, instructions="You build web apps.")

    @agent.tool_plain
    def write_file(path: str, content: str) -> str:
        """Write a file."""
        calls.append({"path": path, "content": content})
        return f"wrote {len(content)} chars to {path}"

    return agent


async def _run(
    agent: Agent[None, str], **kwargs: Any
) -> tuple[list[str], AgentRunResultEvent[str]]:
    deltas: list[str] = []
    result: AgentRunResultEvent[str] | None = None
    async with agent.run_stream_events("Make a hello page", **kwargs) as events:
        async for event in events:
            if isinstance(event, PartStartEvent) and isinstance(event.part, TextPart):
                deltas.append(event.part.content)
            elif isinstance(event, PartDeltaEvent) and isinstance(event.delta, TextPartDelta):
                deltas.append(event.delta.content_delta)
            elif isinstance(event, AgentRunResultEvent):
                result = event
    assert result is not None
    return deltas, result


@pytest.mark.asyncio
async def test_pydantic_ai_anthropic_agent(fake_anthropic: FakeAnthropic) -> None:
    calls: list[dict[str, str]] = []
    agent = _make_agent(_anthropic_model(fake_anthropic), calls)
    settings = AnthropicModelSettings(
        anthropic_cache_instructions=True, anthropic_cache_tool_definitions=True
    )
    deltas, result = await _run(agent, model_settings=settings)

    assert calls == [{"path": "index.html", "content": "<h1>Hello, world</h1>"}]
    assert result.result.output == "All done: the page says hello."
    assert len(deltas) > 4
    assert "".join(deltas) == "Let me write the page.All done: the page says hello."
    usage = result.result.usage
    assert usage.requests == 2
    assert usage.input_tokens == 1200 + 1300
    assert usage.output_tokens == 42 + 9
    assert usage.cache_read_tokens == 1000 + 1200

    first, second = fake_anthropic.requests
    assert first.stream and second.stream
    assert first.path == "/v1/messages"
    assert first.json["system"][-1]["cache_control"]["type"] == "ephemeral"
    assert first.json["tools"][-1]["name"] == "write_file"
    assert first.json["tools"][-1]["cache_control"]["type"] == "ephemeral"
    assert [m["role"] for m in second.json["messages"]] == ["user", "assistant", "user"]
    tool_use = second.json["messages"][1]["content"][-1]
    tool_result = second.json["messages"][2]["content"][0]
    assert tool_use["type"] == "tool_use" and tool_result["type"] == "tool_result"
    assert tool_result["tool_use_id"] == tool_use["id"]


@pytest.mark.asyncio
async def test_pydantic_ai_openai_agent(fake_openai: FakeOpenAI) -> None:
    calls: list[dict[str, str]] = []
    agent = _make_agent(_openai_model(fake_openai), calls)
    deltas, result = await _run(agent)

    assert calls == [{"path": "index.html", "content": "<h1>Hello, world</h1>"}]
    assert result.result.output == "All done: the page says hello."
    assert len(deltas) > 4
    assert "".join(deltas) == "Let me write the page.All done: the page says hello."
    usage = result.result.usage
    assert usage.requests == 2
    assert usage.input_tokens == 1200 + 1300
    assert usage.output_tokens == 42 + 9
    assert usage.cache_read_tokens == 1000 + 1200

    first, second = fake_openai.requests
    assert first.stream and first.json["stream_options"]["include_usage"] is True
    assert first.json["tools"][0]["function"]["name"] == "write_file"
    roles = [m["role"] for m in second.json["messages"]]
    assert roles == ["system", "user", "assistant", "tool"]
    assert (
        second.json["messages"][3]["tool_call_id"]
        == second.json["messages"][2]["tool_calls"][0]["id"]
    )


@pytest.mark.asyncio
async def test_pydantic_ai_callable_script() -> None:
    def script(body: dict[str, Any]) -> Turn:
        last = body["messages"][-1]
        if last["role"] == "tool":
            return Turn([f"tool said: {last['content']}"])
        return Turn([ToolCall("write_file", {"path": "a.txt", "content": "abc"})])

    calls: list[dict[str, str]] = []
    with FakeOpenAI(script) as fake:
        _, result = await _run(_make_agent(_openai_model(fake), calls))
    assert calls == [{"path": "a.txt", "content": "abc"}]
    assert result.result.output == "tool said: wrote 3 chars to a.txt"
    assert fake.request_count == 2


@pytest.mark.asyncio
async def test_pydantic_ai_wrong_key(
    fake_anthropic: FakeAnthropic, fake_openai: FakeOpenAI
) -> None:
    for model in (
        _anthropic_model(fake_anthropic, "sk-wrong"),
        _openai_model(fake_openai, "sk-wrong"),
    ):
        with pytest.raises(ModelAuthenticationError) as info:
            await _run(_make_agent(model, []))
        assert isinstance(info.value, ModelHTTPError) and info.value.status_code == 401


@pytest.mark.asyncio
async def test_pydantic_ai_retries_429(
    fake_anthropic: FakeAnthropic, fake_openai: FakeOpenAI
) -> None:
    fake_anthropic.fail_next(429, retry_after=0.01)
    fake_openai.fail_next(429, retry_after=0.01)
    for model, fake in (
        (_anthropic_model(fake_anthropic), fake_anthropic),
        (_openai_model(fake_openai), fake_openai),
    ):
        calls: list[dict[str, str]] = []
        _, result = await _run(_make_agent(model, calls))
        assert result.result.output == "All done: the page says hello."
        assert [r.status for r in fake.requests] == [429, 200, 200]


@pytest.mark.asyncio
async def test_pydantic_ai_server_error(
    fake_anthropic: FakeAnthropic, fake_openai: FakeOpenAI
) -> None:
    for model, fake in (
        (_anthropic_model(fake_anthropic), fake_anthropic),
        (_openai_model(fake_openai), fake_openai),
    ):
        fake.fail_always(500, retry_after=0.01)
        with pytest.raises(ModelHTTPError) as info:
            await _run(_make_agent(model, []))
        assert info.value.status_code == 500
        assert fake.request_count == 3  # the SDK's default max_retries=2


@pytest.mark.asyncio
async def test_pydantic_ai_cut_stream(
    fake_anthropic: FakeAnthropic, fake_openai: FakeOpenAI
) -> None:
    for model, fake in (
        (_anthropic_model(fake_anthropic), fake_anthropic),
        (_openai_model(fake_openai), fake_openai),
    ):
        fake.cut_stream_after(5)
        with pytest.raises(ModelAPIError) as info:
            await _run(_make_agent(model, []))
        assert isinstance(info.value, ModelConnectionError)
        assert fake.request_count == 1 and fake.requests[0].cut


# ------------------------------------------------------------------------------------------------
# The fake itself
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("cls", [FakeAnthropic, FakeOpenAI])
def test_script_exhausted_is_a_clear_400(cls: type[FakeModelServer]) -> None:
    with cls([]) as fake:
        path = "/v1/messages" if cls is FakeAnthropic else "/chat/completions"
        headers = {"x-api-key": fake.api_key, "authorization": f"Bearer {fake.api_key}"}
        response = httpx2.post(
            fake.url + path, json={"model": "m", "messages": []}, headers=headers
        )
    assert response.status_code == 400
    assert "script is exhausted" in response.text
    assert fake.errors and "script is exhausted" in fake.errors[0]


@pytest.mark.parametrize("cls", [FakeAnthropic, FakeOpenAI])
def test_stop_frees_port_and_threads(cls: type[FakeModelServer]) -> None:
    before = set(threading.enumerate())
    fake = cls([Turn(["hi"])], event_delay=0.05)
    with fake:
        port = fake.port
        path = "/v1/messages" if cls is FakeAnthropic else "/chat/completions"
        headers = {"x-api-key": fake.api_key, "authorization": f"Bearer {fake.api_key}"}
        client = httpx2.Client()
        with client.stream(
            "POST", fake.url + path, json={"model": "m", "stream": True}, headers=headers
        ) as response:
            assert response.status_code == 200
            next(response.iter_bytes())  # a stream is in flight while the server stops
            fake.stop()
        client.close()
    assert set(threading.enumerate()) <= before
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", port)) != 0  # nothing listens any more
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))  # and the port is free
