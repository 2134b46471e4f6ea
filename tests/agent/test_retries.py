"""Backoff, what is retried, what the user is told, and which limit stopped a run."""

from __future__ import annotations

import pytest
from pydantic_ai.exceptions import (
    ModelAPIError,
    ModelAuthenticationError,
    ModelConnectionError,
    ModelContextWindowExceededError,
    ModelHTTPError,
    ModelNotFoundError,
    ModelQuotaExceededError,
    ModelRateLimitError,
    ModelRequestRejectedError,
    ModelServerError,
    ModelTimeoutError,
    ModelUnavailableError,
)

from sandforge.agent.errors import explain, provider_message
from sandforge.agent.limits import RunLimits, limit_from_usage_error, wall_time_limit
from sandforge.agent.models import ProviderInfo
from sandforge.agent.retries import RetryPolicy, is_retryable, retry_after_of

ANTHROPIC = ProviderInfo(
    kind="anthropic",
    label="Anthropic",
    model_name="claude-sonnet-4-5",
    key_env="ANTHROPIC_API_KEY",
    base_url_env="ANTHROPIC_BASE_URL",
    key_set=True,
)
OLLAMA = ProviderInfo(
    kind="ollama",
    label="Ollama at http://127.0.0.1:11434/v1",
    model_name="qwen2.5-coder",
    base_url="http://127.0.0.1:11434/v1",
    key_env="OLLAMA_API_KEY",
    base_url_env="OLLAMA_BASE_URL",
)


def http(
    category: type[ModelAPIError] | None,
    status: int,
    body: object = None,
    headers: dict[str, str] | None = None,
) -> ModelHTTPError:
    return ModelHTTPError.for_category(
        category,  # type: ignore[arg-type]
        status_code=status,
        model_name="m",
        body=body,
        headers=headers,
    )


def test_backoff_doubles_with_jitter_up_to_the_cap() -> None:
    policy = RetryPolicy(base_delay=1.0, max_delay=5.0)
    for retry, ceiling in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 5.0), (9, 5.0)]:
        delays = [policy.delay(retry, None) for _ in range(200)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len(set(delays)) > 1  # jittered


def test_retry_after_is_honoured() -> None:
    policy = RetryPolicy(base_delay=0.001, max_delay=0.01)
    delays = [policy.delay(1, 7.0) for _ in range(100)]
    assert all(7.0 <= d <= 7.0 + 0.001 / 4 for d in delays)


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"retry-after": "3"}, 3.0),
        ({"retry-after": "0.25"}, 0.25),
        ({"retry-after-ms": "1500"}, 1.5),
        ({}, None),
        ({"retry-after": "soon"}, None),
    ],
)
def test_retry_after_headers(headers: dict[str, str], seconds: float | None) -> None:
    assert retry_after_of(http(ModelRateLimitError, 429, headers=headers)) == seconds


@pytest.mark.parametrize(
    ("exc", "retryable"),
    [
        (http(ModelRateLimitError, 429), True),
        (http(ModelServerError, 500), True),
        (http(ModelServerError, 502), True),
        (http(ModelUnavailableError, 503), True),
        (http(None, 408), True),
        (ModelConnectionError("m", "peer closed connection"), True),
        (ModelTimeoutError("m", "read timed out"), True),
        (http(ModelAuthenticationError, 401), False),
        (http(ModelNotFoundError, 404), False),
        (http(ModelRequestRejectedError, 400), False),
        (http(ModelQuotaExceededError, 429), False),
        (http(ModelServerError, 500, headers={"x-should-retry": "false"}), False),
        (ValueError("not a model error"), False),
    ],
)
def test_what_is_retried(exc: BaseException, retryable: bool) -> None:
    assert is_retryable(exc) is retryable


def test_provider_messages_are_found_in_error_bodies() -> None:
    anthropic = {"type": "error", "error": {"type": "x", "message": "invalid x-api-key"}}
    assert provider_message(anthropic) == "invalid x-api-key"
    assert provider_message({"message": "Incorrect API key", "code": "invalid_api_key"}) == (
        "Incorrect API key"
    )
    assert provider_message({"error": "model 'x' not found"}) == "model 'x' not found"
    assert provider_message(None) is None


def test_an_invalid_key_names_the_variable() -> None:
    error = explain(
        http(ModelAuthenticationError, 401, {"message": "invalid x-api-key"}), ANTHROPIC
    )
    assert error.code == "model_auth"
    assert str(error).startswith("Anthropic rejected the API key (HTTP 401: invalid x-api-key).")
    assert "ANTHROPIC_API_KEY" in str(error) and "sandforge doctor" in str(error)


def test_exhausted_retries_name_provider_status_and_fix() -> None:
    rate = explain(http(ModelRateLimitError, 429), ANTHROPIC, retries=5)
    assert rate.code == "model_rate_limited"
    assert "Anthropic kept rate-limiting requests (HTTP 429" in str(rate)
    assert "after 5 retries" in str(rate) and "Wait a minute" in str(rate)

    server = explain(http(ModelUnavailableError, 529), ANTHROPIC, retries=1)
    assert server.code == "model_unavailable" and "HTTP 529" in str(server)
    assert "after 1 retry" in str(server)

    dropped = explain(ModelConnectionError("m", "Connection refused"), OLLAMA, retries=2)
    assert dropped.code == "model_connection"
    assert "Could not reach Ollama at http://127.0.0.1:11434/v1" in str(dropped)
    assert "ollama serve" in str(dropped) and "OLLAMA_BASE_URL" in str(dropped)


def test_other_failures_say_what_to_do() -> None:
    missing = explain(http(ModelNotFoundError, 404, {"error": "model not found"}), OLLAMA)
    assert missing.code == "model_not_found"
    assert "`ollama pull qwen2.5-coder`" in str(missing)

    quota = explain(http(ModelQuotaExceededError, 400, {"message": "credit balance"}), ANTHROPIC)
    assert quota.code == "model_quota" and "Add credit" in str(quota)

    window = explain(http(ModelContextWindowExceededError, 400), ANTHROPIC)
    assert window.code == "model_context_window" and "context window" in str(window)


def test_limits_name_their_setting() -> None:
    limits = RunLimits(max_requests=3, max_tool_calls=4, max_tokens=5000, max_seconds=60)
    cases = {
        "The next request would exceed the request_limit of 3": (
            "requests",
            "limit of 3 model requests (SANDFORGE_MAX_MODEL_REQUESTS)",
        ),
        "The next tool call(s) would exceed the tool_calls_limit of 4 (tool_calls=5).": (
            "tool_calls",
            "limit of 4 tool calls (SANDFORGE_MAX_TOOL_CALLS)",
        ),
        "Exceeded the total_tokens_limit of 5000 (total_tokens=6000)": (
            "tokens",
            "limit of 5,000 tokens (SANDFORGE_MAX_RUN_TOKENS)",
        ),
    }
    for message, (kind, words) in cases.items():
        limit = limit_from_usage_error(message, limits)
        assert limit.limit == kind and words in str(limit)
        assert "files written so far are kept" in str(limit)
    timed = wall_time_limit(limits)
    assert timed.limit == "time" and "60 seconds" in str(timed)
    assert "SANDFORGE_MAX_RUN_SECONDS" in str(timed)
