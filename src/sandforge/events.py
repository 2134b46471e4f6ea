"""The wire contract: the seed's five event types and their SSE framing.

Field names and status values are exactly the seed's. Extensions are extra
optional fields only (listed per model) and are left out of the JSON when unset.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterable, AsyncIterator
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

ProgressStatus = Literal[
    "creating", "initializing", "generating", "writing", "starting", "preview", "complete"
]
PROGRESS_ORDER: tuple[ProgressStatus, ...] = (
    "creating",
    "initializing",
    "generating",
    "writing",
    "starting",
    "preview",
    "complete",
)

# The seed's actions are read, create and update; delete and run are our extensions.
ToolAction = Literal["read", "create", "update", "delete", "run"]


class _Data(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ProgressData(_Data):
    status: ProgressStatus
    message: str
    sandboxId: str | None = None
    # Extensions.
    previewUrl: str | None = None
    """Extension, on `initializing`: the preview already answers (the starter, or the app as it
    was) at this URL and shows each file as it lands; as on `complete`."""
    accessToken: str | None = None
    """Extension, with `previewUrl`: the private preview's token, as on `complete`."""
    version: int | None = None
    """Extension, on a project's live feed: the version a change made outside any run saved
    (a restore or a manual edit), so every viewer shows it."""


class MessageData(_Data):
    type: Literal["assistant"] = "assistant"
    content: str
    delta: bool = False


class ToolData(_Data):
    action: ToolAction
    file: str
    """The file's path relative to the project dir; for `run`, the command."""
    linesAdded: int | None = None
    exitCode: int | None = None
    """Extension, for `run`: the command's exit code."""


class ServicePreview(_Data):
    """Extension: one service of a project (its dev server, or its backend) and its preview."""

    name: str
    port: int
    previewUrl: str


class CompleteData(_Data):
    success: bool
    sandboxId: str
    projectDir: str
    previewUrl: str
    accessToken: str | None = None
    tokensUsed: int
    message: str
    # Extensions.
    runId: str | None = None
    projectId: str | None = None
    model: str | None = None
    version: int | None = None
    """The project version this turn saved."""
    render: dict[str, Any] | None = None
    """Extension: the final rendered check (its problems, screenshot...)."""
    repairs: dict[str, Any] | None = None
    """Extension: what the repair loop did: `{attempts, fixed, remaining}`."""
    cacheReadTokens: int | None = None
    """Extension: the part of the input tokens in `tokensUsed` read from the prompt cache."""
    cacheWriteTokens: int | None = None
    """Extension: the part of the input tokens in `tokensUsed` written to the prompt cache."""
    modelRequests: int | None = None
    """Extension: how many model requests the run made."""
    limitReached: str | None = None
    """Extension: set when a run limit stopped the model early; says which limit and the fix."""
    inputTokens: int | None = None
    """Extension: the input tokens in `tokensUsed` (cached ones included)."""
    outputTokens: int | None = None
    """Extension: the output tokens in `tokensUsed`."""
    costUsd: float | None = None
    """Extension: the run's model cost in USD (genai-prices); absent when its model has no
    known price."""
    sandboxUsage: dict[str, float] | None = None
    """Extension: what the run's sandbox used: `{wallSeconds, cpuSeconds, memoryGbSeconds}`."""
    services: list[ServicePreview] | None = None
    """Extension: every service of the project, the main one (`previewUrl`) first."""


class ErrorData(_Data):
    message: str
    stack: str | None = None
    # Extensions.
    code: str | None = None
    sandboxId: str | None = None
    runId: str | None = None
    """Set on `server_shutdown`: the run goes on being stored; resume it with this id."""
    usage: dict[str, Any] | None = None
    """What the run used before it ended, in the `complete` event's names (`tokensUsed`,
    `inputTokens`, `outputTokens`, `cacheReadTokens`, `cacheWriteTokens`, `modelRequests`,
    `costUsd`, `model`, `sandboxUsage`); absent when it used nothing."""


class ProgressEvent(BaseModel):
    type: Literal["progress"] = "progress"
    data: ProgressData


class MessageEvent(BaseModel):
    type: Literal["message"] = "message"
    data: MessageData


class ToolEvent(BaseModel):
    type: Literal["tool"] = "tool"
    data: ToolData


class CompleteEvent(BaseModel):
    type: Literal["complete"] = "complete"
    data: CompleteData


class ErrorEvent(BaseModel):
    type: Literal["error"] = "error"
    data: ErrorData


Event = Annotated[
    ProgressEvent | MessageEvent | ToolEvent | CompleteEvent | ErrorEvent,
    Field(discriminator="type"),
]
event_adapter: TypeAdapter[Event] = TypeAdapter(Event)


def progress(
    status: ProgressStatus,
    message: str,
    sandbox_id: str | None = None,
    *,
    preview_url: str | None = None,
    access_token: str | None = None,
) -> ProgressEvent:
    data = ProgressData(
        status=status,
        message=message,
        sandboxId=sandbox_id,
        previewUrl=preview_url,
        accessToken=access_token,
    )
    return ProgressEvent(data=data)


def assistant_delta(text: str) -> MessageEvent:
    return MessageEvent(data=MessageData(content=text, delta=True))


def assistant_message(text: str) -> MessageEvent:
    return MessageEvent(data=MessageData(content=text, delta=False))


def error(message: str, *, code: str | None = None, stack: str | None = None) -> ErrorEvent:
    return ErrorEvent(data=ErrorData(message=message, code=code, stack=stack))


def is_terminal(event: Event) -> bool:
    return event.type in ("complete", "error")


def to_json(event: Event) -> str:
    return event.model_dump_json(exclude_none=True)


def from_json(raw: str | bytes) -> Event:
    return event_adapter.validate_json(raw)


def encode_sse(seq: int, event: Event) -> bytes:
    """One SSE frame: `id: <seq>`, `data: <json>` and a blank line."""
    return f"id: {seq}\ndata: {to_json(event)}\n\n".encode()


def encode_sse_notice(event: Event) -> bytes:
    """A frame with no `id:`: a notice about the stream, not one of the run's events, so a
    client resuming with Last-Event-ID picks up where the run's events left off."""
    return f"data: {to_json(event)}\n\n".encode()


def server_shutdown(run_id: str | None) -> ErrorEvent:
    """What an open stream hears last when the server stops: not the run's end."""
    resume = f"; reconnect to follow run {run_id}" if run_id else "; reconnect to follow it"
    event = error(f"The server is shutting down{resume} once it is back.", code="server_shutdown")
    event.data.runId = run_id
    return event


def encode_sse_comment(text: str) -> bytes:
    """A comment frame, used as a keep-alive; clients ignore it."""
    return f": {json.dumps(text)}\n\n".encode()


async def decode_sse(lines: AsyncIterable[str]) -> AsyncIterator[tuple[int, Event]]:
    """The (seq, Event) pairs of an SSE body, given its lines; comments are skipped. A frame
    with no `id:` (a notice about the stream, such as `server_shutdown`) has seq 0."""
    seq = 0
    data: list[str] = []
    async for line in lines:
        if line.startswith("id:"):
            seq = int(line[3:].strip())
        elif line.startswith("data:"):
            data.append(line[5:].strip())
        elif line == "" and data:
            yield seq, from_json("\n".join(data))
            seq, data = 0, []
