"""The scaffolder used when no model is configured. It says so; it never poses as a model."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

from ..events import Event, assistant_message
from ..templates import ProjectTemplate
from .edits import FileEditor, ProjectFiles

NO_MODEL_MESSAGE = (
    "No AI model is configured, so sandforge wrote the {template} starter, customised from "
    "your prompt, instead of generating an app. To generate with a model, set "
    "ANTHROPIC_API_KEY (Claude), or SANDFORGE_MODEL (for example "
    "`openai-chat:gpt-4.1` with OPENAI_API_KEY, or `ollama:qwen2.5-coder`) in the environment "
    "or .env that sandforge starts with. `sandforge doctor` checks the set-up."
)

_LEADING = re.compile(
    r"^\s*(please\s+)?(create|build|make|generate|write|design|develop|code)\s+"
    r"(me\s+)?((a|an|the|my|some)\s+)?",
    re.IGNORECASE,
)
_TRAILING = re.compile(r"\s+(with|that|which|using|for|where|in|to|so)\b.*$", re.IGNORECASE)
MAX_TITLE_CHARS = 60


def derive_title(prompt: str) -> str:
    """A short title from a prompt: "Create a calculator with a modern design" → "Calculator"."""
    first_line = prompt.strip().splitlines()[0] if prompt.strip() else ""
    text = _LEADING.sub("", first_line)
    text = re.split(r"[.:;!?\n,]", text, maxsplit=1)[0]
    text = _TRAILING.sub("", text).strip()
    if not text:
        return "My App"
    words = text.split()
    title = " ".join(w if w.isupper() else w[:1].upper() + w[1:] for w in words)
    return title[:MAX_TITLE_CHARS].rstrip()


async def scaffold(
    files: ProjectFiles, template: ProjectTemplate, prompt: str
) -> AsyncIterator[Event]:
    yield assistant_message(NO_MODEL_MESSAGE.format(template=template.name))
    title = derive_title(prompt)
    editor = FileEditor(files, sandbox=None)
    for path, content in template.starter(
        title=title, heading=title, description=prompt.strip()
    ).items():
        yield await editor.write(path, content)
