"""A scripted pydantic-ai model for the browser tests: SANDFORGE_MODEL=factory:scripted_model:build.

It runs through pydantic-ai's FunctionModel, so the real agent loop, tools and
streaming run; only the model's words are fixed. Each turn streams a few text
chunks, writes three files with write_file, and ends with a short summary. A
prompt containing "heading to <text>" puts <text> in the page's heading, so a
follow-up visibly changes the app. A prompt containing HANG_MARK says one thing
and then thinks forever (to stop a run mid-way); one containing BREAK_MARK
deletes index.html, so the run fails with the pipeline's missing_entry_file.
A conversation that started with THROW_MARK gets a script that throws on load,
whatever automatic repair asks, until a prompt opens with the UI's "Fix it"
wording (FIX_IT_OPENING): then it writes the working counter.

A prompt containing "[gate <dir>]" makes the model wait between turns: its first request
waits for the file <dir>/1 and the one after its writes for <dir>/2, so a test sees what
the preview shows meanwhile. With REACT_MARK as well it edits the React starter's
src/App.tsx (one file) instead of writing the counter.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path

from pydantic_ai.messages import ModelMessage, ModelRequest, ToolReturnPart, UserPromptPart
from pydantic_ai.models.function import AgentInfo, DeltaToolCall, FunctionModel

DEFAULT_HEADING = "Forged by the scripted model"
INTRO_CHUNKS = (
    "I'll build ",
    "a **counter** app: ",
    "one page ",
    "with a big number, ",
    "a button ",
    "and `localStorage` ",
    "so the count survives a reload.",
)
SUMMARY_CHUNKS = ("Done: ", "the counter ", "is ready.")
CHUNK_DELAY_S = 0.25
HANG_MARK = "[hang]"
BREAK_MARK = "[break]"
THROW_MARK = "[throw]"
# The first line of the prompt the UI's "Fix it" button sends (static/js/outcome.js).
FIX_IT_OPENING = "Fix these problems the preview still shows:"
GATE = re.compile(r"\[gate (\S+)\]")
GATE_POLL_S = 0.05
REACT_MARK = "[react]"
REACT_HEADING = "Edited live by the scripted model"
REACT_APP = f"""import "./App.css";

export default function App() {{
  return (
    <main>
      <h1>{REACT_HEADING}</h1>
    </main>
  );
}}
"""

STYLES = """:root { color-scheme: light dark; font-family: system-ui, sans-serif; }
body { display: grid; place-items: center; min-height: 100vh; margin: 0; }
h1 { font-size: 2rem; }
#count { font-size: 4rem; font-weight: 700; }
"""
SCRIPT = """const out = document.getElementById("count");
let count = Number(localStorage.getItem("count") || 0);
out.textContent = String(count);
document.getElementById("inc").addEventListener("click", () => {
  count += 1;
  localStorage.setItem("count", String(count));
  out.textContent = String(count);
});
"""
# A typo that throws on load: the page shows, but its script dies (a ReferenceError).
THROWING_SCRIPT = SCRIPT.replace("out.textContent", "countr.textContent", 1)


def page(heading: str) -> str:
    return f"""<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>Counter</title>
  <link rel="icon" href="data:,">
  <link rel="stylesheet" href="styles.css">
</head>
<body>
  <main>
    <h1>{heading}</h1>
    <p id="count">0</p>
    <button id="inc" type="button">Add one</button>
  </main>
  <script src="app.js"></script>
</body>
</html>
"""


def _latest_prompt(messages: list[ModelMessage]) -> str:
    for message in reversed(messages):
        if isinstance(message, ModelRequest):
            for part in message.parts:
                if isinstance(part, UserPromptPart) and isinstance(part.content, str):
                    return part.content
    return ""


def _prompts(messages: list[ModelMessage]) -> list[str]:
    """Every user prompt of the conversation, oldest first."""
    return [
        part.content
        for message in messages
        if isinstance(message, ModelRequest)
        for part in message.parts
        if isinstance(part, UserPromptPart) and isinstance(part.content, str)
    ]


def _script(messages: list[ModelMessage]) -> str:
    prompts = _prompts(messages)
    stubborn = any(THROW_MARK in p for p in prompts)
    if stubborn and not prompts[-1].startswith(FIX_IT_OPENING):
        return THROWING_SCRIPT
    return SCRIPT


def _tools_returned(messages: list[ModelMessage]) -> bool:
    last = messages[-1] if messages else None
    return isinstance(last, ModelRequest) and any(isinstance(p, ToolReturnPart) for p in last.parts)


def _heading(prompt: str) -> str:
    match = re.search(r"heading to (.+)$", prompt.strip(), re.IGNORECASE)
    return match.group(1).strip().strip("\"'.") if match else DEFAULT_HEADING


async def _wait_at_gate(prompt: str, messages: list[ModelMessage]) -> None:
    """With "[gate <dir>]": wait for <dir>/1 before the first request's answer, <dir>/2 before
    the one after the writes."""
    gate = GATE.search(prompt)
    if gate is None:
        return
    opened = Path(gate.group(1)) / ("2" if _tools_returned(messages) else "1")
    # The test opens the gate from another process: a file is what both can see.
    while not opened.exists():  # noqa: ASYNC110
        await asyncio.sleep(GATE_POLL_S)


def _files(prompt: str, messages: list[ModelMessage]) -> dict[str, str]:
    if REACT_MARK in prompt:
        return {"src/App.tsx": REACT_APP}
    return {
        "index.html": page(_heading(GATE.sub("", prompt))),
        "styles.css": STYLES,
        "app.js": _script(messages),
    }


def build() -> FunctionModel:
    async def stream(
        messages: list[ModelMessage], info: AgentInfo
    ) -> AsyncIterator[str | dict[int, DeltaToolCall]]:
        prompt = _latest_prompt(messages)
        await _wait_at_gate(prompt, messages)
        if HANG_MARK in prompt:
            yield "Thinking about it..."
            await asyncio.sleep(3600)
        if BREAK_MARK in prompt and not _tools_returned(messages):
            yield "Cleaning up."
            yield {
                0: DeltaToolCall(
                    name="delete_file",
                    json_args=json.dumps({"path": "index.html"}),
                    tool_call_id="d0",
                )
            }
            return
        if _tools_returned(messages):
            for chunk in SUMMARY_CHUNKS:
                await asyncio.sleep(CHUNK_DELAY_S)
                yield chunk
            return
        for chunk in INTRO_CHUNKS:
            await asyncio.sleep(CHUNK_DELAY_S)
            yield chunk
        for index, (path, content) in enumerate(_files(prompt, messages).items()):
            yield {
                index: DeltaToolCall(
                    name="write_file",
                    json_args=json.dumps({"path": path, "content": content}),
                    tool_call_id=f"write-{index}",
                )
            }

    return FunctionModel(stream_function=stream, model_name="scripted-counter")
