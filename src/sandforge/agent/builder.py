"""One turn of the model-driven builder: tools over a sandbox, streamed as our Events.

pydantic-ai stays behind this module: its messages and events are translated
here and never reach the wire or the store.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

from pydantic_ai import Agent, RunContext, UsageLimits
from pydantic_ai.messages import (
    ModelMessage,
    ModelRequest,
    ModelResponse,
    PartDeltaEvent,
    PartStartEvent,
    TextPart,
    TextPartDelta,
    UserPromptPart,
)
from pydantic_ai.models import Model

from ..events import Event, assistant_delta
from ..sandbox import Sandbox, SandboxError
from ..templates import ProjectTemplate
from .prompts import system_prompt
from .workspace import EditError, Workspace

MAX_TOOL_OUTPUT_CHARS = 20_000
DEFAULT_REQUEST_LIMIT = 200


@dataclass
class ChatMessage:
    role: str
    content: str


@dataclass
class BuildDeps:
    workspace: Workspace
    pending: list[Event] = field(default_factory=list)


@dataclass
class TurnResult:
    tokens_used: int = 0
    text: str = ""


def _clip(text: str) -> str:
    if len(text) <= MAX_TOOL_OUTPUT_CHARS:
        return text
    return text[:MAX_TOOL_OUTPUT_CHARS] + f"\n[... {len(text) - MAX_TOOL_OUTPUT_CHARS} more chars]"


def _build_agent() -> Agent[BuildDeps, str]:
    agent: Agent[BuildDeps, str] = Agent(deps_type=BuildDeps, output_type=str)

    @agent.tool(sequential=True)
    async def list_files(ctx: RunContext[BuildDeps], path: str = ".") -> str:
        """List the files under `path` (relative to the project dir), recursively."""
        try:
            entries = await ctx.deps.workspace.sandbox.list_files(path)
        except SandboxError as exc:
            return f"Error: {exc}"
        return "\n".join(e.path + ("/" if e.is_dir else f" ({e.size} bytes)") for e in entries) or "(empty)"

    @agent.tool(sequential=True)
    async def read_file(ctx: RunContext[BuildDeps], path: str) -> str:
        """Read a text file relative to the project dir."""
        try:
            content, event = await ctx.deps.workspace.read(path)
        except SandboxError as exc:
            return f"Error: {exc}"
        ctx.deps.pending.append(event)
        return _clip(content)

    @agent.tool(sequential=True)
    async def write_file(ctx: RunContext[BuildDeps], path: str, content: str) -> str:
        """Create a file or replace its whole content. Parent directories are created."""
        try:
            event = await ctx.deps.workspace.write(path, content)
        except SandboxError as exc:
            return f"Error: {exc}"
        ctx.deps.pending.append(event)
        return f"{event.data.action}d {path}"

    @agent.tool(sequential=True)
    async def edit_file(ctx: RunContext[BuildDeps], path: str, search: str, replace: str) -> str:
        """Replace one exact occurrence of `search` with `replace` in an existing file."""
        try:
            event = await ctx.deps.workspace.edit(path, search, replace)
        except (SandboxError, EditError) as exc:
            return f"Error: {exc}"
        ctx.deps.pending.append(event)
        return f"updated {path}"

    @agent.tool(sequential=True)
    async def delete_file(ctx: RunContext[BuildDeps], path: str) -> str:
        """Delete a file or directory relative to the project dir."""
        try:
            event = await ctx.deps.workspace.delete(path)
        except SandboxError as exc:
            return f"Error: {exc}"
        ctx.deps.pending.append(event)
        return f"deleted {path}"

    @agent.tool(sequential=True)
    async def run_command(ctx: RunContext[BuildDeps], command: str) -> str:
        """Run a shell command in the project dir and return its exit code and output."""
        try:
            result, event = await ctx.deps.workspace.run(command)
        except SandboxError as exc:
            return f"Error: {exc}"
        ctx.deps.pending.append(event)
        note = " (timed out)" if result.timed_out else ""
        return _clip(
            f"exit code {result.exit_code}{note}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
        )

    return agent


_AGENT = _build_agent()


def history_messages(history: Sequence[ChatMessage]) -> list[ModelMessage]:
    """Earlier turns of the conversation as model messages."""
    messages: list[ModelMessage] = []
    for message in history:
        if message.role == "user":
            messages.append(ModelRequest(parts=[UserPromptPart(content=message.content)]))
        elif message.role == "assistant":
            messages.append(ModelResponse(parts=[TextPart(content=message.content)]))
    return messages


class Builder:
    def __init__(
        self,
        model: Model | str,
        template: ProjectTemplate,
        agents: Sequence[str],
        request_limit: int = DEFAULT_REQUEST_LIMIT,
    ) -> None:
        self.model = model
        self.template = template
        self.agents = tuple(agents)
        self.request_limit = request_limit
        self.result = TurnResult()

    async def run(
        self, sandbox: Sandbox, prompt: str, history: Sequence[ChatMessage] = ()
    ) -> AsyncIterator[Event]:
        deps = BuildDeps(workspace=Workspace(sandbox))
        text: list[str] = []
        async with _AGENT.run_stream_events(
            prompt,
            model=self.model,
            deps=deps,
            instructions=system_prompt(self.template, self.agents),
            message_history=history_messages(history),
            usage_limits=UsageLimits(request_limit=self.request_limit),
        ) as stream:
            async for event in stream:
                while deps.pending:
                    yield deps.pending.pop(0)
                chunk = _text_chunk(event)
                if chunk:
                    text.append(chunk)
                    yield assistant_delta(chunk)
            while deps.pending:
                yield deps.pending.pop(0)
            usage = stream.usage
        self.result = TurnResult(
            tokens_used=usage.input_tokens + usage.output_tokens, text="".join(text)
        )


def _text_chunk(event: object) -> str:
    if isinstance(event, PartStartEvent) and isinstance(event.part, TextPart):
        return event.part.content
    if isinstance(event, PartDeltaEvent) and isinstance(event.delta, TextPartDelta):
        return event.delta.content_delta
    return ""
