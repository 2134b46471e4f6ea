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

LONG_DIR = "/".join(["d" * 100] * 5)
"""A directory whose files' paths are longer than the store's 500 characters."""

ODD_FILES_COMMAND = " && ".join(
    [
        "ln -s index.html link.html",
        "mkfifo pipe",
        "head -c 11534336 /dev/zero > big.bin",
        "ln -s . loop",
        "ln -s /etc/passwd outside",
        "ln -s nowhere dangling",
        "mkdir -p sub",
        "ln -s ../sub sub/up",
        "printf x > \"$(printf 'bad\\377name')\"",
        "printf y > 'new\nline'",
        "python3 -c 'import socket; socket.socket(socket.AF_UNIX).bind(\"sock\")'",
        f"mkdir -p {LONG_DIR} && printf z > {LONG_DIR}/f",
        "ls -la",
    ]
)
"""A symlink, a FIFO and an 11 MiB file: what the store cannot keep as regular files; then
symlinks in every shape (a loop, out of the sandbox, dangling), names that are not UTF-8
or hold a newline, a socket, and a path too long for the store."""


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


SIZED_FILES = {"tiny.txt": 100, "small.js": 20_000, "medium.css": 200_000, "large.txt": 1_000_000}


def sized_content(name: str, size: int) -> str:
    """`size` bytes of text that differ from line to line, so a body cut short or spliced
    from another response cannot pass for the whole."""
    lines = (f"{name} line {i:09d}\n" for i in range(size // 20 + 1))
    return "".join(lines)[:size]


def sized_files() -> FunctionModel:
    """Writes index.html and files of a few sizes up to 1 MB, for load through the proxy."""

    async def stream(
        messages: list[ModelMessage], info: AgentInfo
    ) -> AsyncIterator[str | dict[int, DeltaToolCall]]:
        if _answered(messages):
            yield "Done."
            return
        files = {"index.html": PAGE, **{n: sized_content(n, s) for n, s in SIZED_FILES.items()}}
        for index, (path, content) in enumerate(files.items()):
            yield _call(index, "write_file", {"path": path, "content": content})

    return FunctionModel(stream_function=stream, model_name="scripted-sized-files")
