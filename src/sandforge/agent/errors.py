"""Model failures in words a user can act on: who failed, with what status, and what to do."""

from __future__ import annotations

from typing import Any

from pydantic_ai.exceptions import (
    ModelAPIError,
    ModelAuthenticationError,
    ModelConnectionError,
    ModelContextWindowExceededError,
    ModelHTTPError,
    ModelNotFoundError,
    ModelQuotaExceededError,
    ModelRateLimitError,
    ModelRequestTimeout,
    ModelServerError,
    ModelTimeoutError,
    ModelUnavailableError,
)

from ..errors import SandforgeError
from .models import ProviderInfo
from .retries import status_of

MAX_DETAIL_CHARS = 300


class ModelCallError(SandforgeError):
    """The model could not be used for this run; the message says why and what to do."""

    code = "model_error"
    http_status = 502


class ModelAuthError(ModelCallError):
    code = "model_auth"


class ModelNotFound(ModelCallError):
    code = "model_not_found"


class ModelQuotaExceeded(ModelCallError):
    code = "model_quota"


class ModelContextWindowExceeded(ModelCallError):
    code = "model_context_window"


class ModelRateLimited(ModelCallError):
    code = "model_rate_limited"


class ModelTimeout(ModelCallError):
    code = "model_timeout"


class ModelConnectionFailed(ModelCallError):
    code = "model_connection"


class ModelUnavailable(ModelCallError):
    code = "model_unavailable"


class ModelRejected(ModelCallError):
    code = "model_rejected"


class ModelMisbehaved(ModelCallError):
    """The model answered in a shape sandforge could not use."""

    code = "model_behaviour"


def provider_message(body: object) -> str | None:
    """The human part of a provider's error body: `{"error": {"message": ...}}` and the like."""
    if isinstance(body, dict):
        message: Any = body.get("message")
        if isinstance(message, str) and message:
            return message
        inner = body.get("error")
        if isinstance(inner, dict | str):
            return provider_message(inner) if isinstance(inner, dict) else inner
    if isinstance(body, str) and body.strip():
        return body.strip()
    return None


def _detail(exc: ModelAPIError) -> str:
    text = provider_message(exc.body) or (str(exc.__cause__) if exc.__cause__ else "") or str(exc)
    text = " ".join(text.split())
    return text if len(text) <= MAX_DETAIL_CHARS else text[: MAX_DETAIL_CHARS - 3] + "..."


def _status(exc: ModelAPIError) -> str:
    status = status_of(exc)
    detail = _detail(exc)
    if status is None:
        return detail
    return f"HTTP {status}: {detail}" if detail else f"HTTP {status}"


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]


def _key_fix(provider: ProviderInfo) -> str:
    if provider.key_env is None:
        return "Check the credentials of the configured model."
    where = {
        "anthropic": " (create one at https://console.anthropic.com/settings/keys)",
        "openai": " (create one at https://platform.openai.com/api-keys)",
    }.get(provider.kind, "")
    verb = "Set" if not provider.key_set else "Set a valid key in"
    return f"{verb} {provider.key_env}{where} and restart sandforge; `sandforge doctor` checks it."


def _reach_fix(provider: ProviderInfo) -> str:
    if provider.kind == "ollama":
        return (
            f"Check that Ollama is running (`ollama serve`) and that {provider.base_url_env} "
            f"points at it (now {provider.base_url})."
        )
    if provider.base_url_env and provider.base_url:
        return (
            f"Check that the server is up and that {provider.base_url_env} is right "
            f"(now {provider.base_url}), then try again."
        )
    return "Check this machine's network connection, then try again."


def _tries(retries: int) -> str:
    if retries <= 0:
        return ""
    return f" after {retries} {'retry' if retries == 1 else 'retries'}"


def explain(exc: ModelAPIError, provider: ProviderInfo, retries: int = 0) -> ModelCallError:
    """A ModelCallError for `exc`, raised by `provider` after `retries` retries."""
    who = _capital(provider.label)
    status = _status(exc)
    model = provider.model_name or exc.model_name
    if isinstance(exc, ModelAuthenticationError) or status_of(exc) in (401, 403):
        what = "rejected the API key" if status_of(exc) != 403 else "refused access"
        return ModelAuthError(f"{who} {what} ({status}). {_key_fix(provider)}")
    if isinstance(exc, ModelNotFoundError) or status_of(exc) == 404:
        fix = "Set SANDFORGE_MODEL to a model it serves"
        if provider.kind == "ollama":
            fix = f"Pull it on the Ollama host with `ollama pull {model}`, or set SANDFORGE_MODEL"
        return ModelNotFound(
            f"{who} does not know the model {model!r} ({status}). {fix}, then restart sandforge."
        )
    if isinstance(exc, ModelQuotaExceededError):
        return ModelQuotaExceeded(
            f"{who} says the account is out of credit or quota ({status}). Add credit or raise "
            "the quota in the provider's console, then try again."
        )
    if isinstance(exc, ModelContextWindowExceededError):
        return ModelContextWindowExceeded(
            f"The conversation no longer fits in the context window of {model} ({status}). "
            "Start a new project, or continue with a model that has a larger context window."
        )
    if isinstance(exc, ModelRateLimitError) or status_of(exc) == 429:
        return ModelRateLimited(
            f"{who} kept rate-limiting requests ({status}){_tries(retries)}. Wait a minute and "
            "try again, or ask the provider for a higher rate limit; SANDFORGE_MODEL_MAX_RETRIES "
            "sets how often sandforge retries."
        )
    if isinstance(exc, ModelTimeoutError | ModelRequestTimeout):
        return ModelTimeout(
            f"{who} did not answer in time ({status}){_tries(retries)}. {_reach_fix(provider)} "
            "SANDFORGE_MODEL_TIMEOUT_S sets how long a request may stay silent."
        )
    if isinstance(exc, ModelConnectionError):
        return ModelConnectionFailed(
            f"Could not reach {provider.label} or the connection dropped ({status})"
            f"{_tries(retries)}. {_reach_fix(provider)}"
        )
    code = status_of(exc)
    if isinstance(exc, ModelServerError | ModelUnavailableError) or (code or 0) >= 500:
        return ModelUnavailable(
            f"{who} kept failing with a server error ({status}){_tries(retries)}. The provider "
            "is having trouble: try again later, or set SANDFORGE_MODEL to another model."
        )
    if isinstance(exc, ModelHTTPError):
        return ModelRejected(f"{who} rejected the request ({status}).")
    return ModelCallError(f"{who} failed: {status}{_tries(retries)}.")
