"""Scripted pydantic-ai models, loaded by workers through SANDFORGE_MODEL=factory:...:NAME.

They speak to the agent through pydantic-ai's FunctionModel, so the real agent
loop, tools and streaming run; only the model's choices are fixed.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from pydantic_ai.messages import (
    ModelMessage,
    ModelRequest,
    ModelResponse,
    TextPart,
    ToolReturnPart,
    UserPromptPart,
)
from pydantic_ai.models.function import AgentInfo, DeltaToolCall, FunctionModel

CALCULATOR_HTML = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Calculator</title>
<link rel="stylesheet" href="styles.css"></head>
<body>
<h1>Scripted Calculator</h1>
<div id="display">0</div>
<script src="app.js"></script>
</body>
</html>
"""
CALCULATOR_CSS = "body { font-family: sans-serif; }\n#display { font-size: 2rem; }\n"
CALCULATOR_JS = "document.getElementById('display').textContent = String(6 * 7);\n"

# Each step is the model's answer to one request: text chunks, then tool calls.
CALCULATOR_STEPS: list[tuple[list[str], list[tuple[str, dict[str, str]]]]] = [
    (["I'll build ", "a calculator."], [("list_files", {"path": "."})]),
    ([], [("read_file", {"path": "index.html"})]),
    (
        ["Writing the files now."],
        [
            ("write_file", {"path": "index.html", "content": CALCULATOR_HTML}),
            ("write_file", {"path": "styles.css", "content": CALCULATOR_CSS}),
            (
                "write_file",
                {"path": "calc/engine.js", "content": "export const add = (a, b) => a + b;\n"},
            ),
        ],
    ),
    (
        [],
        [
            ("edit_file", {"path": "app.js", "search": "", "replace": ""}),
            ("write_file", {"path": "app.js", "content": CALCULATOR_JS}),
            ("run_command", {"command": "ls calc"}),
        ],
    ),
    (["Done: ", "your calculator is ready."], []),
]


def _requests_so_far(messages: list[ModelMessage]) -> int:
    return sum(
        1
        for m in messages
        if isinstance(m, ModelRequest) and any(isinstance(p, ToolReturnPart) for p in m.parts)
    )


def calculator() -> FunctionModel:
    async def stream(
        messages: list[ModelMessage], info: AgentInfo
    ) -> AsyncIterator[str | dict[int, DeltaToolCall]]:
        texts, calls = CALCULATOR_STEPS[min(_requests_so_far(messages), len(CALCULATOR_STEPS) - 1)]
        for text in texts:
            yield text
        for index, (name, args) in enumerate(calls):
            yield {
                index: DeltaToolCall(
                    name=name, json_args=json.dumps(args), tool_call_id=f"call-{name}-{index}"
                )
            }

    return FunctionModel(stream_function=stream, model_name="scripted-calculator")


def hangs() -> FunctionModel:
    """Says one thing, then thinks forever: for killing and cancelling runs mid-generation."""

    async def stream(messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[str]:
        yield "Thinking..."
        await asyncio.sleep(3600)

    return FunctionModel(stream_function=stream, model_name="scripted-hangs")


def writes_nothing() -> FunctionModel:
    """Deletes the entry file and stops: the run must fail with a clear error."""

    async def stream(
        messages: list[ModelMessage], info: AgentInfo
    ) -> AsyncIterator[str | dict[int, DeltaToolCall]]:
        if _requests_so_far(messages) == 0:
            yield {
                0: DeltaToolCall(
                    name="delete_file",
                    json_args=json.dumps({"path": "index.html"}),
                    tool_call_id="d0",
                )
            }
        else:
            yield "I removed it."

    return FunctionModel(stream_function=stream, model_name="scripted-writes-nothing")


def _user_prompts(messages: list[ModelMessage]) -> list[str]:
    return [
        str(p.content)
        for m in messages
        if isinstance(m, ModelRequest)
        for p in m.parts
        if isinstance(p, UserPromptPart)
    ]


def _assistant_texts(messages: list[ModelMessage]) -> list[str]:
    return [
        p.content
        for m in messages
        if isinstance(m, ModelResponse)
        for p in m.parts
        if isinstance(p, TextPart)
    ]


COUNTER_HTML = (
    '<!doctype html><title>Counter</title><link rel="stylesheet" href="styles.css">\n'
    "<h1>Counter</h1>\n"
)


def remembers() -> FunctionModel:
    """Turn 1 builds a counter; turn 2 ("make it red") insists on seeing turn 1 first."""

    async def stream(
        messages: list[ModelMessage], info: AgentInfo
    ) -> AsyncIterator[str | dict[int, DeltaToolCall]]:
        prompts = _user_prompts(messages)
        last = messages[-1]
        answered = isinstance(last, ModelRequest) and any(
            isinstance(p, ToolReturnPart) for p in last.parts
        )
        if len(prompts) == 1:
            if answered:
                yield "Built the counter."
                return
            calls = [
                ("write_file", {"path": "index.html", "content": COUNTER_HTML}),
                ("write_file", {"path": "styles.css", "content": "body { background: white; }\n"}),
            ]
        else:
            if prompts[0] != "Create a counter" or "Built the counter." not in _assistant_texts(
                messages
            ):
                raise AssertionError(f"the follow-up did not get the earlier turns: {prompts}")
            if answered:
                yield "It is red now."
                return
            calls = [("edit_file", {"path": "styles.css", "search": "white", "replace": "red"})]
        for index, (name, args) in enumerate(calls):
            yield {
                index: DeltaToolCall(
                    name=name, json_args=json.dumps(args), tool_call_id=f"c{len(prompts)}-{index}"
                )
            }

    return FunctionModel(stream_function=stream, model_name="scripted-remembers")


def _writes(name: str, files: dict[str, str]) -> FunctionModel:
    """Writes `files` in one step, then says it is done."""

    async def stream(
        messages: list[ModelMessage], info: AgentInfo
    ) -> AsyncIterator[str | dict[int, DeltaToolCall]]:
        if _requests_so_far(messages):
            yield "Done."
            return
        for index, (path, content) in enumerate(files.items()):
            args = json.dumps({"path": path, "content": content})
            yield {
                index: DeltaToolCall(name="write_file", json_args=args, tool_call_id=f"w{index}")
            }

    return FunctionModel(stream_function=stream, model_name=name)


def blank_page() -> FunctionModel:
    return _writes(
        "scripted-blank", {"index.html": "<!doctype html><title>Blank</title><body></body>"}
    )


def throwing_page() -> FunctionModel:
    html = (
        "<!doctype html><title>Broken</title><h1>Almost</h1>"
        '<script>throw new Error("calculator exploded")</script>'
    )
    return _writes("scripted-throws", {"index.html": html})


def broken_vite_config() -> FunctionModel:
    """Breaks the React template's Vite config, so the dev server dies at start."""
    config = 'throw new Error("vite config exploded");\nexport default {};\n'
    return _writes("scripted-broken-vite", {"vite.config.ts": config})


REPAIR_MARK = "does not work yet"
"""In the repair loop's prompt: a turn that sees it is being asked to fix what it built."""
WORKING_PAGE = "<!doctype html><title>Fixed</title><h1>It works</h1>"


def _throws(message: str) -> str:
    script = f'<script>throw new Error("{message}")</script>'
    return f"<!doctype html><title>Broken</title><h1>Almost</h1>{script}"


def _writes_per_turn(name: str, files_for: Callable[[list[str]], dict[str, str]]) -> FunctionModel:
    """Each turn (the first, then each repair) writes `files_for(user prompts so far)`."""

    async def stream(
        messages: list[ModelMessage], info: AgentInfo
    ) -> AsyncIterator[str | dict[int, DeltaToolCall]]:
        last = messages[-1]
        if isinstance(last, ModelRequest) and any(
            isinstance(p, ToolReturnPart) for p in last.parts
        ):
            yield "Done."
            return
        prompts = _user_prompts(messages)
        for index, (path, content) in enumerate(files_for(prompts).items()):
            args = json.dumps({"path": path, "content": content})
            yield {
                index: DeltaToolCall(
                    name="write_file", json_args=args, tool_call_id=f"t{len(prompts)}-{index}"
                )
            }

    return FunctionModel(stream_function=stream, model_name=name)


def _repairs(prompts: list[str]) -> int:
    return sum(1 for p in prompts if REPAIR_MARK in p)


def fixes_on_repair() -> FunctionModel:
    """Writes a page that throws; the first repair turn fixes it."""
    return _writes_per_turn(
        "scripted-fixes",
        lambda prompts: {
            "index.html": WORKING_PAGE if _repairs(prompts) else _throws("calculator exploded")
        },
    )


def never_fixes() -> FunctionModel:
    """Every turn breaks the page in a new way: the loop must stop at its cap."""
    return _writes_per_turn(
        "scripted-never-fixes",
        lambda prompts: {"index.html": _throws(f"exploded {_repairs(prompts)}")},
    )


def repeats_error() -> FunctionModel:
    """Every turn writes the same broken page: the loop must stop on the repeat."""
    return _writes_per_turn(
        "scripted-repeats", lambda prompts: {"index.html": _throws("calculator exploded")}
    )


REACT_BROKEN_APP = "export default function App() {\n  return <h1>Almost</h1\n}\n"
REACT_FIXED_APP = "export default function App() {\n  return <h1>React works</h1>;\n}\n"


def react_fixes_compile_error() -> FunctionModel:
    """Writes an App.tsx that does not compile; the repair turn fixes it."""
    return _writes_per_turn(
        "scripted-react-fixes",
        lambda prompts: {"src/App.tsx": REACT_FIXED_APP if _repairs(prompts) else REACT_BROKEN_APP},
    )


def follows_json() -> FunctionModel:
    """Does what the prompt spells out as JSON after its first word: `edit {"path", "search",
    "replace"}` calls edit_file, `write {"path", "content"}` write_file, `run {"command"}`
    run_command; then says it is done.

    Tests of project types drive the real agent's tools with it, whatever the stack."""

    async def stream(
        messages: list[ModelMessage], info: AgentInfo
    ) -> AsyncIterator[str | dict[int, DeltaToolCall]]:
        if _requests_so_far(messages):
            yield "Done."
            return
        verb, _, args = _user_prompts(messages)[-1].partition(" ")
        tool = {"edit": "edit_file", "write": "write_file", "run": "run_command"}[verb]
        yield "On it. "
        yield {0: DeltaToolCall(name=tool, json_args=args, tool_call_id="t0")}

    return FunctionModel(stream_function=stream, model_name="scripted-follows-json")


GATE = re.compile(r"\[gate (\S+)\]")
LIVE_PAGE = "<!doctype html><title>Live</title><h1>Written while the model works</h1>"


def gated() -> FunctionModel:
    """Waits at a gate before each answer ("[gate <dir>]" in the prompt): for the file <dir>/1
    before it writes index.html, <dir>/2 before it says it is done. A test sees meanwhile what
    the preview serves."""

    async def stream(
        messages: list[ModelMessage], info: AgentInfo
    ) -> AsyncIterator[str | dict[int, DeltaToolCall]]:
        gate = GATE.search(_user_prompts(messages)[-1])
        assert gate is not None, "the prompt names no gate"
        last = messages[-1]
        done = isinstance(last, ModelRequest) and any(
            isinstance(p, ToolReturnPart) for p in last.parts
        )
        opened = Path(gate.group(1)) / ("2" if done else "1")
        # The test opens the gate from another process: a file is what both can see.
        while not opened.exists():  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        if done:
            yield "Done."
            return
        args = json.dumps({"path": "index.html", "content": LIVE_PAGE})
        yield {0: DeltaToolCall(name="write_file", json_args=args, tool_call_id="live-0")}

    return FunctionModel(stream_function=stream, model_name="scripted-gated")
