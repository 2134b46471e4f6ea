"""The system prompt: the builder's rules, the project type's stack and the chosen personas."""

from __future__ import annotations

from collections.abc import Sequence

from ..templates import ProjectTemplate

PERSONAS: dict[str, str] = {
    "frontend-dev": (
        "You are a senior frontend developer. Write clean, semantic, accessible markup and "
        "idiomatic, dependency-free code that works on the first load."
    ),
    "ui-designer": (
        "You are a UI designer. Give the app a modern, consistent look: a clear visual "
        "hierarchy, comfortable spacing, a coherent colour palette with dark-mode support, "
        "and responsive layouts that work on phones."
    ),
    "backend-dev": (
        "You are a backend developer. Keep data handling robust: validate input, handle "
        "errors visibly, and persist state where the user expects it to survive a reload."
    ),
    "qa-tester": (
        "You are a QA tester. Before you finish, re-read the files you wrote, check that every "
        "referenced file exists and every element the scripts use is in the markup, and fix "
        "what you find."
    ),
}

DEFAULT_AGENTS: tuple[str, ...] = ("frontend-dev",)

RULES = """\
You build web apps inside a sandbox by calling tools. Work in the project dir; paths are
relative to it. Use list_files and read_file to see what is there, write_file to create or
replace a file, edit_file for a small change to an existing file, delete_file to remove one,
and run_command for shell commands (there is no general network access; the npm registry
and PyPI are reachable for `npm install` and `pip install`).
Write complete files, never placeholders or "rest unchanged" comments. When you are done,
reply with a short summary of what you built; do not paste the code into the reply."""


def persona_fragments(agents: Sequence[str]) -> list[str]:
    """The chosen personas' prompt fragments, in order, each once; the default when none."""
    chosen = list(dict.fromkeys(agents)) or list(DEFAULT_AGENTS)
    unknown = [name for name in chosen if name not in PERSONAS]
    if unknown:
        raise ValueError(f"unknown agents {unknown}; choose from {sorted(PERSONAS)}")
    return [PERSONAS[name] for name in chosen]


def system_prompt(template: ProjectTemplate, agents: Sequence[str]) -> str:
    """The builder's rules, the project type (stack, files, dev server) and the personas."""
    personas = "\n".join(f"- {fragment}" for fragment in persona_fragments(agents))
    servers = "; ".join(
        f"`{s.command}` on port {s.port}" + (f" (in {s.cwd}/)" if s.cwd != "." else "")
        for s in template.services
    )
    what = "The dev server runs" if len(template.services) == 1 else "The dev servers run"
    return (
        f"{RULES}\n\nProject type: {template.label}.\n{template.stack}\n"
        f"The entry file is {template.entry_file}. {what} {servers}; they are already set "
        "up, so do not start them.\n\n"
        f"Your roles:\n{personas}"
    )
