"""A zero-latency scripted model for benches: writes a 10-file web app in one step."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

from pydantic_ai.messages import ModelMessage, ModelRequest, ToolReturnPart
from pydantic_ai.models.function import AgentInfo, DeltaToolCall, FunctionModel

FILES = {
    "index.html": (
        '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Bench</title>'
        '<link rel="stylesheet" href="css/main.css"></head><body><h1>Bench app</h1>'
        '<script type="module" src="js/main.js"></script></body></html>\n'
    ),
    "css/main.css": "body { font-family: sans-serif; }\n" * 20,
    "css/theme.css": ":root { --accent: #55f; }\n" * 20,
    "js/main.js": "import { add } from './math.js';\nconsole.log(add(1, 2));\n",
    "js/math.js": "export const add = (a, b) => a + b;\n" * 10,
    "js/dom.js": "export const $ = (s) => document.querySelector(s);\n" * 10,
    "js/store.js": "export const store = new Map();\n" * 10,
    "js/util.js": "export const noop = () => {};\n" * 10,
    "data/items.json": json.dumps([{"id": i} for i in range(50)]),
    "README.md": "# Bench app\n",
}


def ten_files() -> FunctionModel:
    async def stream(
        messages: list[ModelMessage], info: AgentInfo
    ) -> AsyncIterator[str | dict[int, DeltaToolCall]]:
        last = messages[-1]
        if isinstance(last, ModelRequest) and any(
            isinstance(p, ToolReturnPart) for p in last.parts
        ):
            yield "Done."
            return
        yield "Writing ten files."
        for index, (path, content) in enumerate(FILES.items()):
            args = json.dumps({"path": path, "content": content})
            yield {
                index: DeltaToolCall(name="write_file", json_args=args, tool_call_id=f"w{index}")
            }

    return FunctionModel(stream_function=stream, model_name="bench-ten-files")


def hangs() -> FunctionModel:
    """Streams one chunk, then waits: keeps a worker alive to measure it."""
    import asyncio

    async def stream(messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[str]:
        yield "Thinking..."
        await asyncio.sleep(3600)

    return FunctionModel(stream_function=stream, model_name="bench-hangs")
