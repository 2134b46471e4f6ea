"""Scripted models for the reliability tests, loaded by workers (factory:tests.reliability...).

The test steers a run from outside through files named in the prompt, so nothing in a
test depends on how fast the machine is.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
from collections.abc import AsyncIterator

from pydantic_ai.messages import ModelMessage, ModelRequest, ToolReturnPart, UserPromptPart
from pydantic_ai.models.function import AgentInfo, DeltaToolCall, FunctionModel

PAGE = "<!doctype html><title>Paced</title><h1>Paced</h1>\n"

ODD_FILES_COMMAND = (
    "ln -s index.html link.html && mkfifo pipe && head -c 11534336 /dev/zero > big.bin && ls -la"
)
"""A symlink, a FIFO and an 11 MiB file: what the store cannot keep as regular files."""


def _answered(messages: list[ModelMessage]) -> int:
    return sum(
        1
        for m in messages
        if isinstance(m, ModelRequest) and any(isinstance(p, ToolReturnPart) for p in m.parts)
    )


def _release_file(messages: list[ModelMessage]) -> str:
    for m in messages:
        if isinstance(m, ModelRequest):
            for part in m.parts:
                if isinstance(part, UserPromptPart):
                    found = re.search(r"release:(\S+)", str(part.content))
                    if found:
                        return found.group(1)
    raise AssertionError("the prompt names no release file")


def _call(index: int, name: str, args: dict[str, str]) -> dict[int, DeltaToolCall]:
    return {
        index: DeltaToolCall(name=name, json_args=json.dumps(args), tool_call_id=f"{name}-{index}")
    }


def paced() -> FunctionModel:
    """Streams a chunk every 100 ms until the file `release:<path>` in the prompt exists, then
    writes index.html and finishes: a run that lasts exactly as long as the test needs."""

    async def stream(
        messages: list[ModelMessage], info: AgentInfo
    ) -> AsyncIterator[str | dict[int, DeltaToolCall]]:
        if _answered(messages):
            yield "Done."
            return
        release = _release_file(messages)
        tick = 0
        while not await asyncio.to_thread(os.path.exists, release):
            yield f"tick {tick}. "
            tick += 1
            await asyncio.sleep(0.1)
        yield _call(0, "write_file", {"path": "index.html", "content": PAGE})

    return FunctionModel(stream_function=stream, model_name="scripted-paced")


def odd_files() -> FunctionModel:
    """Writes a page, then makes a symlink, a FIFO and a file over the 10 MB limit."""

    async def stream(
        messages: list[ModelMessage], info: AgentInfo
    ) -> AsyncIterator[str | dict[int, DeltaToolCall]]:
        step = _answered(messages)
        if step == 0:
            yield _call(0, "write_file", {"path": "index.html", "content": PAGE})
        elif step == 1:
            yield _call(0, "run_command", {"command": ODD_FILES_COMMAND})
        else:
            yield "Done."

    return FunctionModel(stream_function=stream, model_name="scripted-odd-files")
