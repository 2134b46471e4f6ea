"""One turn of the model-driven builder: tools over a sandbox, streamed as our Events.

pydantic-ai stays behind this module: its messages and events are translated
here and never reach the wire or the store.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal

from pydantic_ai import Agent, RunContext
from pydantic_ai.agent import AgentRunEvents
from pydantic_ai.exceptions import (
    ModelAPIError,
    ModelConnectionError,
    RunTimedOut,
    UnexpectedModelBehavior,
    UsageLimitExceeded,
    UserError,
)
from pydantic_ai.messages import (
    BinaryContent,
    FunctionToolCallEvent,
    ModelMessage,
    ModelRequest,
    ModelResponse,
    PartDeltaEvent,
    PartStartEvent,
    TextPart,
    TextPartDelta,
    UserContent,
    UserPromptPart,
)
from pydantic_ai.models import Model
from pydantic_ai.usage import RunUsage

from ..chat import ChatMessage, PromptImage
from ..events import Event, assistant_delta, progress
from ..sandbox import Sandbox, SandboxError
from ..templates import ProjectTemplate
from .cost import turn_cost
from .edits import EditError, FileEditor, ProjectFiles
from .errors import ModelMisbehaved, explain
from .limits import LimitReached, limit_from_usage_error, wall_time_limit
from .models import BuildModel, ModelRuntime
from .prompts import system_prompt
from .retries import is_retryable, retry_after_of, status_of

MAX_TOOL_OUTPUT_CHARS = 20_000
TOOL_RETRIES = 3
"""How often the model may retry a tool call whose arguments did not validate."""


@dataclass
class BuildDeps:
    editor: FileEditor
    pending: list[Event] = field(default_factory=list)


@dataclass
class _TurnState:
    """Where a turn stands between attempts at the model."""

    messages: list[ModelMessage]
    user_prompt: str | list[UserContent] | None
    """None once the prompt is in `messages` (a resumed attempt must not send it twice)."""
    usage: RunUsage = field(default_factory=RunUsage)
    failures: int = 0
    """Consecutive failed attempts at the current model request."""
    answered: int = 0
    """Model responses completed when the last failure happened."""
    failure: ModelAPIError | None = None
    limit: LimitReached | None = None
    over_budget: bool = False
    """The turn's cost reached the spending limit it was given."""


@dataclass
class TurnResult:
    tokens_used: int = 0
    """What the provider reported: input tokens (cached ones included) plus output tokens."""
    text: str = ""
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    """The part of `input_tokens` read from the provider's prompt cache."""
    cache_write_tokens: int = 0
    requests: int = 0
    tool_calls: int = 0
    retries: int = 0
    limit_reached: str | None = None
    """Why the model stopped early, if a run limit stopped it."""
    cost_usd: float | None = 0.0
    """The turn's price (genai-prices); None when the price table does not know the model."""
    over_budget: bool = False
    """The turn stopped early because its cost reached the spending limit it was given."""


def _clip(text: str) -> str:
    if len(text) <= MAX_TOOL_OUTPUT_CHARS:
        return text
    return text[:MAX_TOOL_OUTPUT_CHARS] + f"\n[... {len(text) - MAX_TOOL_OUTPUT_CHARS} more chars]"


# The model's tools. Their names and docstrings are what the model sees.


async def list_files(ctx: RunContext[BuildDeps], path: str = ".") -> str:
    """List the files under `path` (relative to the project dir), recursively."""
    try:
        entries = await ctx.deps.editor.files.list_files(path)
    except SandboxError as exc:
        return f"Error: {exc}"
    return (
        "\n".join(e.path + ("/" if e.is_dir else f" ({e.size} bytes)") for e in entries)
        or "(empty)"
    )


async def read_file(ctx: RunContext[BuildDeps], path: str) -> str:
    """Read a text file relative to the project dir."""
    try:
        content, event = await ctx.deps.editor.read(path)
    except SandboxError as exc:
        return f"Error: {exc}"
    ctx.deps.pending.append(event)
    return _clip(content)


async def write_file(ctx: RunContext[BuildDeps], path: str, content: str) -> str:
    """Create a file or replace its whole content. Parent directories are created."""
    try:
        event = await ctx.deps.editor.write(path, content)
    except SandboxError as exc:
        return f"Error: {exc}"
    ctx.deps.pending.append(event)
    return f"{event.data.action}d {path}"


async def edit_file(ctx: RunContext[BuildDeps], path: str, search: str, replace: str) -> str:
    """Replace one exact occurrence of `search` with `replace` in an existing file."""
    try:
        event = await ctx.deps.editor.edit(path, search, replace)
    except (SandboxError, EditError) as exc:
        return f"Error: {exc}"
    ctx.deps.pending.append(event)
    return f"updated {path}"


async def delete_file(ctx: RunContext[BuildDeps], path: str) -> str:
    """Delete a file or directory relative to the project dir."""
    try:
        event = await ctx.deps.editor.delete(path)
    except SandboxError as exc:
        return f"Error: {exc}"
    ctx.deps.pending.append(event)
    return f"deleted {path}"


async def run_command(ctx: RunContext[BuildDeps], command: str) -> str:
    """Run a shell command in the project dir and return its exit code and output."""
    try:
        result, event = await ctx.deps.editor.run(command)
    except SandboxError as exc:
        return f"Error: {exc}"
    ctx.deps.pending.append(event)
    note = " (timed out)" if result.timed_out else ""
    return _clip(
        f"exit code {result.exit_code}{note}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    )


def _build_agent(*, runs_commands: bool) -> Agent[BuildDeps, str]:
    agent: Agent[BuildDeps, str] = Agent(deps_type=BuildDeps, output_type=str, retries=TOOL_RETRIES)
    for tool in (list_files, read_file, write_file, edit_file, delete_file):
        agent.tool(sequential=True)(tool)
    if runs_commands:
        agent.tool(sequential=True)(run_command)
    return agent


_AGENT = _build_agent(runs_commands=True)
_FILES_ONLY_AGENT = _build_agent(runs_commands=False)
"""For the persistent flow: no machine runs anything, so the model is offered no command tool
(one that could only fail)."""


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
    """Runs one turn of the model over a sandbox and yields our Events.

    Failed model requests (429, 5xx, timeouts, dropped streams) are retried with backoff: the
    run resumes from the messages completed so far, so finished tool calls are never repeated.
    Reaching a run limit ends the turn early (`result.limit_reached`); other model failures
    raise ModelCallError, whose message names the provider, the status and the fix.
    """

    def __init__(
        self,
        model: Model | str,
        template: ProjectTemplate,
        agents: Sequence[str],
        request_limit: int | None = None,
        *,
        runtime: ModelRuntime | None = None,
    ) -> None:
        self.model = model
        self.template = template
        self.agents = tuple(agents)
        if runtime is None:
            runtime = model.runtime if isinstance(model, BuildModel) else ModelRuntime()
        if request_limit is not None:
            runtime = replace(runtime, limits=replace(runtime.limits, max_requests=request_limit))
        self.runtime = runtime
        self.result = TurnResult()

    @property
    def request_limit(self) -> int:
        return self.runtime.limits.max_requests

    async def run(
        self,
        files: ProjectFiles,
        prompt: str,
        history: Sequence[ChatMessage] = (),
        *,
        sandbox: Sandbox | None = None,
        images: Sequence[PromptImage] = (),
        spend_limit_usd: float | None = None,
    ) -> AsyncIterator[Event]:
        """One turn over `files`; commands run in `sandbox` (none in the persistent flow).

        `images` go with the prompt to models that read them. Once the turn's priced
        cost reaches `spend_limit_usd`, it stops before running the next tool calls
        (`result.over_budget`).
        """
        self.result = TurnResult()
        sandbox_id = sandbox.id if sandbox is not None else None
        deps = BuildDeps(editor=FileEditor(files, sandbox))
        user_prompt: str | list[UserContent] = prompt
        if images and self.runtime.provider.reads_images:
            user_prompt = [
                prompt,
                *(BinaryContent(i.data, media_type=i.media_type) for i in images),
            ]
        state = _TurnState(messages=history_messages(history), user_prompt=user_prompt)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.runtime.limits.max_seconds
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                self._finish(state.messages, state.usage, wall_time_limit(self.runtime.limits))
                return
            async for event in self._attempt(state, deps, remaining, spend_limit_usd):
                yield event
            if state.failure is None:
                self._finish(state.messages, state.usage, state.limit, state.over_budget)
                if state.limit is not None:
                    yield progress("generating", str(state.limit), sandbox_id)
                return
            delay, note = self._retry_after_failure(state, state.failure)
            yield progress("generating", note, sandbox_id)
            await asyncio.sleep(min(delay, max(deadline - loop.time(), 0.0)))
            state.messages = _resumable(state.messages)
            if _prompt_sent(state.messages):
                state.user_prompt = None

    async def _attempt(
        self, state: _TurnState, deps: BuildDeps, remaining: float, spend_limit_usd: float | None
    ) -> AsyncIterator[Event]:
        """One model run from the messages so far; sets `state.failure`, `state.limit` or
        `state.over_budget`."""
        limits = self.runtime.limits
        state.failure, state.limit = None, None
        try:
            runs_commands = deps.editor.sandbox is not None
            agent = _AGENT if runs_commands else _FILES_ONLY_AGENT
            async with agent.run_stream_events(
                state.user_prompt,
                model=self.model,
                deps=deps,
                instructions=system_prompt(self.template, self.agents, runs_commands=runs_commands),
                message_history=state.messages,
                usage=state.usage,
                usage_limits=limits.usage_limits(),
                timeout=remaining,
            ) as stream:
                try:
                    async for event in stream:
                        while deps.pending:
                            yield deps.pending.pop(0)
                        chunk = _text_chunk(event)
                        if chunk:
                            yield assistant_delta(chunk)
                        if _over(spend_limit_usd, event, stream):
                            state.over_budget = True
                            break
                finally:
                    state.messages, state.usage = _run_state(stream, state.messages, state.usage)
        except UsageLimitExceeded as exc:
            state.limit = limit_from_usage_error(str(exc), limits)
        except RunTimedOut:
            state.limit = wall_time_limit(limits)
        except ModelAPIError as exc:
            state.failure = exc
        except UnexpectedModelBehavior as exc:
            self._finish(state.messages, state.usage)
            raise ModelMisbehaved(
                f"{_capital(self.runtime.provider.label)} answered in a way sandforge could "
                f"not use: {exc.message}. Try again, or set SANDFORGE_MODEL to a stronger "
                "model."
            ) from exc
        while deps.pending:
            yield deps.pending.pop(0)

    def _retry_after_failure(self, state: _TurnState, failure: ModelAPIError) -> tuple[float, str]:
        """How long to wait before resuming, and what to tell the user; raises when retries are
        spent or the failure is not one a retry can fix."""
        policy, provider = self.runtime.retry, self.runtime.provider
        done = _answered(state.messages)
        if done > state.answered:
            state.failures, state.answered = 0, done
        state.failures += 1
        retry_after = retry_after_of(failure)
        if (
            not is_retryable(failure)
            or state.failures > policy.max_retries
            or (retry_after or 0) > policy.max_retry_after
        ):
            self._finish(state.messages, state.usage)
            raise explain(failure, provider, state.failures - 1) from failure
        delay = policy.delay(state.failures, retry_after)
        self.result.retries += 1
        note = (
            f"{_capital(provider.label)}: {_failure_summary(failure)}; retrying in "
            f"{_seconds(delay)} (retry {state.failures} of {policy.max_retries})"
        )
        return delay, note

    def _finish(
        self,
        messages: list[ModelMessage],
        usage: RunUsage,
        limit: LimitReached | None = None,
        over_budget: bool = False,
    ) -> None:
        cost = turn_cost(messages)
        self.result = TurnResult(
            tokens_used=usage.input_tokens + usage.output_tokens,
            text=_turn_text(messages),
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            cache_read_tokens=usage.cache_read_tokens,
            cache_write_tokens=usage.cache_write_tokens,
            requests=usage.requests,
            tool_calls=usage.tool_calls,
            retries=self.result.retries,
            limit_reached=str(limit) if limit is not None else None,
            cost_usd=float(cost) if cost is not None else None,
            over_budget=over_budget,
        )


def _over(limit_usd: float | None, event: object, stream: AgentRunEvents[str]) -> bool:
    """Whether the turn's cost has reached the limit, checked as a response's tool calls are
    about to run (the response is complete and priced then)."""
    if limit_usd is None or not isinstance(event, FunctionToolCallEvent):
        return False
    cost = turn_cost(stream.all_messages())
    return cost is not None and cost >= Decimal(str(limit_usd))


def _seconds(delay: float) -> str:
    return f"{delay:.2f}s" if delay < 10 else f"{delay:.0f}s"


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]


def _failure_summary(exc: ModelAPIError) -> str:
    status = status_of(exc)
    if status is not None:
        return f"HTTP {status}"
    if isinstance(exc, ModelConnectionError):
        return "the connection dropped"
    return type(exc).__name__


def _run_state(
    stream: AgentRunEvents[str], messages: list[ModelMessage], usage: RunUsage
) -> tuple[list[ModelMessage], RunUsage]:
    """The run's messages and usage so far (unchanged if the run never started)."""
    try:
        return stream.all_messages(), stream.usage
    except UserError:
        return messages, usage


def _answered(messages: Sequence[ModelMessage]) -> int:
    return sum(1 for m in messages if isinstance(m, ModelResponse) and m.state == "complete")


def _resumable(messages: list[ModelMessage]) -> list[ModelMessage]:
    """The history to resume from: without a trailing response that was cut off."""
    resumable = list(messages)
    while resumable and isinstance(resumable[-1], ModelResponse):
        if resumable[-1].state == "complete":
            break
        resumable.pop()
    return resumable


def _prompt_sent(messages: Sequence[ModelMessage]) -> bool:
    """Whether a run already added this turn's prompt to the history."""
    return any(isinstance(m, ModelRequest) and m.run_id is not None for m in messages)


def _turn_text(messages: Sequence[ModelMessage]) -> str:
    """What the model said this turn: the text of the responses our runs produced."""
    return "".join(
        part.content
        for message in messages
        if isinstance(message, ModelResponse) and message.run_id is not None
        for part in message.parts
        if isinstance(part, TextPart)
    )


def _text_chunk(event: object) -> str:
    if isinstance(event, PartStartEvent) and isinstance(event.part, TextPart):
        return event.part.content
    if isinstance(event, PartDeltaEvent) and isinstance(event.delta, TextPartDelta):
        return event.delta.content_delta
    return ""
