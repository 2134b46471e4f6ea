"""What is wrong with a finished preview, in words the model can fix, and the bounded loop.

After the model's turn, the pipeline checks what a user would see: the rendered page
(uncaught exceptions, console errors, the app's own failed requests, a blank page, a
page that is not the app) and the build (the dev server's compile errors, and the
type checker for TypeScript project types). Anything found goes back to the model as
a new turn, up to SANDFORGE_REPAIR_ATTEMPTS times; the loop stops early when the same
problems come back unchanged, or when the run's limits are reached.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..projects.serving import DEV_PROCESS
from ..sandbox import Sandbox
from ..templates import ProjectTemplate

RenderCheck = Callable[[str, Path], Awaitable[dict[str, Any] | None]]
"""Load a preview URL in the contained browser; its report as JSON, or None when the
rendered check is off or unavailable."""

MAX_PROBLEMS = 10
MAX_PROBLEM_CHARS = 600
TYPECHECK_TIMEOUT_S = 120.0
_VITE_ERROR = re.compile(r"(\[vite\].*error.*|Internal server error.*|Pre-transform error.*)", re.I)
_TSC_ERROR = re.compile(r"^(?P<file>[^\s(]+)\((?P<line>\d+),(?P<col>\d+)\): error (?P<text>.+)$")


@dataclass
class Findings:
    problems: list[str] = field(default_factory=list)
    render: dict[str, Any] | None = None

    def describe(self) -> str:
        """ "1 console error", "3 problems": what the progress message names."""
        if len(self.problems) == 1:
            return self.problems[0].split(":", 1)[0].lower()
        return f"{len(self.problems)} problems"


@dataclass
class Repairs:
    attempts: int = 0
    remaining: list[str] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)
    """Every problem any check found; those not remaining were fixed."""
    stopped_because: str | None = None

    def found(self, problems: list[str]) -> None:
        self.remaining = problems
        self.seen.update(problems)

    def to_json(self) -> dict[str, Any]:
        return {
            "attempts": self.attempts,
            "fixed": len(self.seen - set(self.remaining)),
            "remaining": self.remaining,
        }


def _clip(text: str) -> str:
    text = text.strip()
    return text if len(text) <= MAX_PROBLEM_CHARS else text[: MAX_PROBLEM_CHARS - 3] + "..."


def vite_errors(log: str) -> list[str]:
    """Compile errors the dev server logged (Vite prints them with its overlay's text)."""
    found = []
    for line in log.splitlines():
        match = _VITE_ERROR.search(line)
        if match and match.group(0) not in found:
            found.append(match.group(0))
    return [f"Build error in the dev server: {_clip(line)}" for line in found]


def tsc_errors(output: str) -> list[str]:
    found = []
    for line in output.splitlines():
        match = _TSC_ERROR.match(line.strip())
        if match:
            where = f"{match['file']}:{match['line']}:{match['col']}"
            found.append(f"Type error: {_clip(match['text'])} (at {where})")
    return found


def logged_since(before: str, after: str) -> str:
    """What a log tail gained between two reads (the tail is a sliding window, so the old
    one's end is looked for in the new one)."""
    anchor = before[-200:]
    if not anchor:
        return after
    at = after.rfind(anchor)
    return after[at + len(anchor) :] if at >= 0 else after


async def _dev_log(sandbox: Sandbox) -> str:
    return (await sandbox.process_status(DEV_PROCESS)).log_tail


async def _type_errors(sandbox: Sandbox, template: ProjectTemplate) -> list[str]:
    if template.typecheck_command is None:
        return []
    result = await sandbox.exec(template.typecheck_command, timeout=TYPECHECK_TIMEOUT_S)
    return [] if result.exit_code == 0 else tsc_errors(result.stdout + "\n" + result.stderr)


async def find_problems(
    check: RenderCheck | None,
    url: str,
    screenshot: Path,
    sandbox: Sandbox | None,
    template: ProjectTemplate,
) -> Findings:
    """The page's problems and, with a sandbox, the build's: what the dev server logs while
    the page loads (so only errors of the current files count) and the type checker's."""
    findings = Findings()
    log_before = await _dev_log(sandbox) if sandbox is not None else ""
    if check is not None:
        findings.render = await check(url, screenshot)
    if sandbox is not None:
        findings.problems += vite_errors(logged_since(log_before, await _dev_log(sandbox)))
        findings.problems += await _type_errors(sandbox, template)
    if findings.render is not None:
        findings.problems += list(findings.render.get("problems", []))
    findings.problems = findings.problems[:MAX_PROBLEMS]
    return findings


def repair_prompt(problems: list[str]) -> str:
    listed = "\n".join(f"- {problem}" for problem in problems)
    return (
        "The app you built does not work yet. Opening its preview shows these problems "
        f"(a user would see them):\n{listed}\n\n"
        "Fix them: read the files involved, change only what is needed, and keep what "
        "already works. Do not explain at length; fix the code."
    )
