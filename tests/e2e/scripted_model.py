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
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator

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


def build() -> FunctionModel:
    async def stream(
        messages: list[ModelMessage], info: AgentInfo
    ) -> AsyncIterator[str | dict[int, DeltaToolCall]]:
        prompt = _latest_prompt(messages)
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
        files = {
            "index.html": page(_heading(prompt)),
            "styles.css": STYLES,
            "app.js": _script(messages),
        }
        for index, (path, content) in enumerate(files.items()):
            yield {
                index: DeltaToolCall(
                    name="write_file",
                    json_args=json.dumps({"path": path, "content": content}),
                    tool_call_id=f"write-{index}",
                )
            }

    return FunctionModel(stream_function=stream, model_name="scripted-counter")
