"""The scripted counter over the real Anthropic wire: a FakeAnthropic whose script writes the
same three files as scripted_model.py, so the browser tests can read what the model endpoint
was sent (the prompt, the model name, image blocks) from `fake.requests`."""

from __future__ import annotations

from typing import Any

from tests.fakes.model_apis import FakeAnthropic, ToolCall, Turn

from .scripted_model import SCRIPT, STYLES, _heading, page

DEFAULT_MODEL = "claude-wire-default"
OTHER_MODEL = "claude-wire-other"


def user_blocks(message: dict[str, Any]) -> list[dict[str, Any]]:
    content = message.get("content")
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    return [b for b in content or [] if isinstance(b, dict)]


def prompt_text(request: dict[str, Any]) -> str:
    """The text of the latest user message that is a prompt (not a tool result)."""
    for message in reversed(request.get("messages", [])):
        blocks = user_blocks(message)
        if message.get("role") == "user" and not any(b["type"] == "tool_result" for b in blocks):
            return "\n".join(b.get("text", "") for b in blocks if b["type"] == "text")
    return ""


def _turn(request: dict[str, Any]) -> Turn:
    last = request["messages"][-1]
    if any(b["type"] == "tool_result" for b in user_blocks(last)):
        return Turn(["Done: the counter is ready."])
    files = {
        # The prompt's own words: the notes sandforge adds after it name no heading.
        "index.html": page(_heading(prompt_text(request).split("\n\n")[0])),
        "styles.css": STYLES,
        "app.js": SCRIPT,
    }
    calls = [ToolCall("write_file", {"path": p, "content": c}) for p, c in files.items()]
    return Turn(["Writing the counter.", *calls])


def counter_fake() -> FakeAnthropic:
    return FakeAnthropic(_turn)


def server_env(fake: FakeAnthropic) -> dict[str, str]:
    return {
        "ANTHROPIC_BASE_URL": fake.url,
        "ANTHROPIC_API_KEY": fake.api_key,
        "SANDFORGE_ALLOWED_MODELS": f"anthropic:{OTHER_MODEL}",
    }
