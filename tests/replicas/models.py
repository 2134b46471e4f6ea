"""The replicas' scripted model (SANDFORGE_MODEL=factory:tests.replicas.models:cluster).

Zero latency by default: one text chunk, then index.html with the prompt as its heading
and turn-<n>.txt (n counts the conversation's prompts, so each turn leaves its own file).
A prompt with PACED streams PACED_CHUNKS chunks PACED_DELAY_S apart first (a run long
enough to follow from elsewhere and to disconnect from); one with HANG says one thing
and then thinks forever (a run in flight to kill its replica under).
"""

from __future__ import annotations

import asyncio
import html
import json
from collections.abc import AsyncIterator

from pydantic_ai.messages import ModelMessage, ModelRequest, ToolReturnPart, UserPromptPart
from pydantic_ai.models.function import AgentInfo, DeltaToolCall, FunctionModel

PACED = "[paced]"
HANG = "[hang]"
PACED_CHUNKS = 24
PACED_DELAY_S = 0.1


def _prompt(messages: list[ModelMessage]) -> str:
    for message in reversed(messages):
        if isinstance(message, ModelRequest):
            # An unanswered prompt (an interrupted turn) may share the request: the last wins.
            for part in reversed(message.parts):
                if isinstance(part, UserPromptPart) and isinstance(part.content, str):
                    return part.content
    return ""


def page(prompt: str) -> str:
    heading = html.escape(prompt.replace(PACED, "").replace(HANG, "").strip())
    return f'<!doctype html><html lang="en"><meta charset="utf-8"><h1>{heading}</h1></html>\n'


def cluster() -> FunctionModel:
    async def stream(
        messages: list[ModelMessage], info: AgentInfo
    ) -> AsyncIterator[str | dict[int, DeltaToolCall]]:
        last = messages[-1]
        if isinstance(last, ModelRequest) and any(
            isinstance(p, ToolReturnPart) for p in last.parts
        ):
            yield "Done."
            return
        prompt = _prompt(messages)
        if HANG in prompt:
            yield "Thinking..."
            await asyncio.sleep(3600)
        if PACED in prompt:
            for index in range(PACED_CHUNKS):
                yield f"chunk {index} "
                await asyncio.sleep(PACED_DELAY_S)
        yield "Writing the page."
        turn = sum(
            isinstance(part, UserPromptPart)
            for message in messages
            if isinstance(message, ModelRequest)
            for part in message.parts
        )
        writes = {"index.html": page(prompt), f"turn-{turn}.txt": prompt}
        for index, (path, content) in enumerate(writes.items()):
            args = json.dumps({"path": path, "content": content})
            call = DeltaToolCall(name="write_file", json_args=args, tool_call_id=f"w{index}")
            yield {index: call}

    return FunctionModel(stream_function=stream, model_name="replicas-cluster")
