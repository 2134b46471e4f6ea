"""When and how long to wait before sending a failed model request again.

sandforge owns retrying: the SDK clients are told not to retry (`max_retries=0`), so every
attempt is visible, the waits are configurable (tests use tiny ones) and a stream that drops
half-way is retried like any other transient failure.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from pydantic_ai.exceptions import (
    ModelAPIError,
    ModelConnectionError,
    ModelHTTPError,
    ModelQuotaExceededError,
    ModelRateLimitError,
    ModelRequestRejectedError,
    ModelRequestTimeout,
    ModelServerError,
    ModelUnavailableError,
)

RETRYABLE_STATUSES = frozenset({408, 409, 425, 429})
"""Besides every 5xx: request timeout, conflict, too early and too many requests."""


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter; a provider's Retry-After wins over the computed wait."""

    max_retries: int = 5
    """Retries after the first attempt, per request (a request that succeeds resets the count)."""
    base_delay: float = 1.0
    """The wait before the first retry, doubled for each further one (before jitter)."""
    max_delay: float = 60.0
    """No computed wait is longer than this."""
    max_retry_after: float = 300.0
    """A provider asking for a longer wait than this is not retried: the error is reported."""

    def backoff(self, retry: int) -> float:
        """The wait before retry number `retry` (1-based): "equal jitter" in [d/2, d]."""
        ceiling = min(self.max_delay, self.base_delay * (2 ** max(retry - 1, 0)))
        return random.uniform(ceiling / 2, ceiling)

    def delay(self, retry: int, retry_after: float | None) -> float:
        """The wait before retry number `retry`, honouring the provider's Retry-After."""
        if retry_after is not None and retry_after >= 0:
            # Never earlier than asked; a little jitter on top spreads out clients that were
            # all told the same instant.
            return retry_after + random.uniform(0, min(self.base_delay, retry_after) / 4)
        return self.backoff(retry)


def _seconds(raw: str | None, scale: float = 1.0) -> float | None:
    if raw is None:
        return None
    try:
        value = float(raw) / scale
    except ValueError:
        return None
    return value if 0 <= value < float("inf") else None


def retry_after_of(exc: BaseException) -> float | None:
    """Seconds the provider asked to wait: `retry-after-ms`, or `Retry-After` in seconds
    (fractions too, which the SDKs honour) or as an HTTP date."""
    if not isinstance(exc, ModelAPIError):
        return None
    if exc.retry_after is not None:
        return exc.retry_after
    headers = exc.headers if isinstance(exc, ModelHTTPError) else None
    if not headers:
        return None
    return _seconds(headers.get("retry-after-ms"), 1000) or _seconds(headers.get("retry-after"))


def status_of(exc: BaseException) -> int | None:
    return exc.status_code if isinstance(exc, ModelHTTPError) else None


def is_retryable(exc: BaseException) -> bool:
    """Whether sending the same request again may succeed: 429, 5xx, timeouts, dropped streams."""
    if not isinstance(exc, ModelAPIError):
        return False
    if isinstance(exc, ModelQuotaExceededError | ModelRequestRejectedError):
        return False
    if isinstance(exc, ModelHTTPError) and exc.provider_retry_hint is False:
        return False
    if isinstance(
        exc,
        ModelRateLimitError
        | ModelServerError
        | ModelUnavailableError
        | ModelConnectionError
        | ModelRequestTimeout,
    ):
        return True
    status = status_of(exc)
    return status is not None and (status >= 500 or status in RETRYABLE_STATUSES)
