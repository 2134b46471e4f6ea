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
    "js/main.js": "import { add0 } from './math.js';\nconsole.log(add0(1, 2));\n",
    # Distinct names: a module declaring one twice fails to load, and the rendered check
    # (rightly) sends the run into a repair turn, which is not what this figure measures.
    "js/math.js": "".join(f"export const add{i} = (a, b) => a + b + {i};\n" for i in range(10)),
    "js/dom.js": "".join(
        f"export const find{i} = (s) => document.querySelectorAll(s)[{i}];\n" for i in range(10)
    ),
    "js/store.js": "".join(f"export const store{i} = new Map();\n" for i in range(10)),
    "js/util.js": "".join(f"export const noop{i} = () => {i};\n" for i in range(10)),
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


LIVE_FIRST_LATENCY_S = 3.0
"""How long the live writer 'thinks' before its first answer: longer than the starter takes."""
LIVE_WRITES = 5
LIVE_GAP_S = 1.5


def live_page(version: int) -> str:
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Live</title></head>'
        f'<body><h1 id="version">version {version}</h1></body></html>\n'
    )


def live_writer() -> FunctionModel:
    """A model with a latency: thinks LIVE_FIRST_LATENCY_S, then rewrites index.html
    LIVE_WRITES times, LIVE_GAP_S apart (one write per request), then says it is done."""
    import asyncio

    async def stream(
        messages: list[ModelMessage], info: AgentInfo
    ) -> AsyncIterator[str | dict[int, DeltaToolCall]]:
        written = sum(
            1
            for m in messages
            if isinstance(m, ModelRequest) and any(isinstance(p, ToolReturnPart) for p in m.parts)
        )
        await asyncio.sleep(LIVE_GAP_S if written else LIVE_FIRST_LATENCY_S)
        if written >= LIVE_WRITES:
            yield "Done."
            return
        args = json.dumps({"path": "index.html", "content": live_page(written + 1)})
        yield {0: DeltaToolCall(name="write_file", json_args=args, tool_call_id=f"v{written}")}

    return FunctionModel(stream_function=stream, model_name="bench-live-writer")
