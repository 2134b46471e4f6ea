"""Per-run limits on the model's work: requests, tool calls, tokens and wall time.

Reaching one ends the model's turn, not the run: the files written so far stay and the
pipeline goes on to serve them, with a message that says which limit stopped the work.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic_ai import UsageLimits

from ..errors import SandforgeError

DEFAULT_MAX_REQUESTS = 200
DEFAULT_MAX_TOOL_CALLS = 400
DEFAULT_MAX_TOKENS = 5_000_000
DEFAULT_MAX_SECONDS = 1800.0


@dataclass(frozen=True)
class RunLimits:
    max_requests: int = DEFAULT_MAX_REQUESTS
    max_tool_calls: int = DEFAULT_MAX_TOOL_CALLS
    max_tokens: int = DEFAULT_MAX_TOKENS
    """Input (cached included) plus output tokens over all the run's model requests."""
    max_seconds: float = DEFAULT_MAX_SECONDS

    def usage_limits(self) -> UsageLimits:
        return UsageLimits(
            request_limit=self.max_requests,
            tool_calls_limit=self.max_tool_calls,
            total_tokens_limit=self.max_tokens,
        )


class LimitReached(SandforgeError):
    """A run limit stopped the model; the message says which and how to raise it."""

    code = "limit_reached"

    def __init__(self, message: str, limit: str) -> None:
        super().__init__(message)
        self.limit = limit


_KEPT = (
    "The files written so far are kept; send a follow-up message to continue, or raise the limit."
)


def _stopped(what: str, setting: str, limit: str) -> LimitReached:
    return LimitReached(
        f"Stopped: this run reached its limit of {what} ({setting}). {_KEPT}", limit
    )


def limit_from_usage_error(message: str, limits: RunLimits) -> LimitReached:
    """Which of our limits pydantic-ai's UsageLimitExceeded is about, from its message."""
    if "tool_calls_limit" in message:
        return _stopped(
            f"{limits.max_tool_calls} tool calls", "SANDFORGE_MAX_TOOL_CALLS", "tool_calls"
        )
    if "tokens_limit" in message:
        return _stopped(f"{limits.max_tokens:,} tokens", "SANDFORGE_MAX_RUN_TOKENS", "tokens")
    if "request_limit" in message:
        return _stopped(
            f"{limits.max_requests} model requests", "SANDFORGE_MAX_MODEL_REQUESTS", "requests"
        )
    return LimitReached(f"Stopped: {message}. {_KEPT}", "other")


def wall_time_limit(limits: RunLimits) -> LimitReached:
    return _stopped(
        f"{limits.max_seconds:g} seconds of generation", "SANDFORGE_MAX_RUN_SECONDS", "time"
    )
