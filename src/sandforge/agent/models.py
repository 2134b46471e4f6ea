"""Which model builds: from SANDFORGE_MODEL (or a request's allowed override), or Anthropic when
its key is set, or offline.

Model strings:

- `anthropic:<model>`: the Anthropic Messages API (ANTHROPIC_API_KEY, ANTHROPIC_BASE_URL).
- `openai:<model>` or `openai-chat:<model>`: Chat Completions on OpenAI or any OpenAI-compatible
  server (OPENAI_API_KEY, OPENAI_BASE_URL): vLLM, LM Studio, llama.cpp, LiteLLM...
- `openai-responses:<model>`: OpenAI's Responses API.
- `ollama:<model>`: Ollama's OpenAI-compatible endpoint (OLLAMA_BASE_URL).
- `offline`: the template scaffolder, which says that no model is configured.
- `factory:package.module:callable`: a callable that returns a pydantic-ai Model (tests, plugins).
- any other `provider:model` pydantic-ai knows, configured through that provider's own variables.

Every model is wrapped in a `BuildModel` that carries its `ModelRuntime`: who the provider is
(for error messages that name the variable to set), the retry policy and the run limits.
"""

from __future__ import annotations

import fnmatch
import importlib
from dataclasses import dataclass, field

from pydantic import SecretStr
from pydantic_ai.exceptions import UserError
from pydantic_ai.models import Model, infer_model
from pydantic_ai.models.wrapper import WrapperModel
from pydantic_ai.settings import ModelSettings

from ..config import Settings
from ..errors import InvalidRequest
from .limits import RunLimits
from .retries import RetryPolicy

DEFAULT_ANTHROPIC_MODEL = "anthropic:claude-sonnet-4-5"
OFFLINE = "offline"
NO_KEY_NEEDED = "sandforge-no-key"
"""Sent as the key to an OpenAI-compatible server configured without one (the SDK needs a value)."""


class ModelConfigError(InvalidRequest):
    """The configured (or requested) model cannot be used; the message names the fix."""

    code = "model_config"


class ModelNotAllowed(ModelConfigError):
    code = "model_not_allowed"


IMAGE_INPUT_KINDS = frozenset({"anthropic", "openai"})
"""Providers whose models read images (a screenshot of a broken preview helps them)."""


@dataclass(frozen=True)
class ProviderInfo:
    """Who answers the model requests, in the words an error message needs."""

    kind: str
    """`anthropic`, `openai`, `openai-compatible`, `ollama`, `factory` or a pydantic-ai provider."""
    label: str
    """E.g. `Anthropic`, `OpenAI`, `the OpenAI-compatible server at http://...`."""
    model_name: str = ""
    base_url: str | None = None
    key_env: str | None = None
    """The variable that holds the key, e.g. ANTHROPIC_API_KEY."""
    base_url_env: str | None = None
    key_set: bool = False

    @property
    def reads_images(self) -> bool:
        return self.kind in IMAGE_INPUT_KINDS


@dataclass(frozen=True)
class ModelRuntime:
    """Everything the builder needs besides the model: the provider, retries and limits."""

    provider: ProviderInfo = field(default_factory=lambda: ProviderInfo("model", "The model"))
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    limits: RunLimits = field(default_factory=RunLimits)


class BuildModel(WrapperModel):
    """A pydantic-ai model that carries its `ModelRuntime`; requests go to the wrapped model."""

    runtime: ModelRuntime

    def __init__(self, wrapped: Model, runtime: ModelRuntime) -> None:
        super().__init__(wrapped)
        self.runtime = runtime


@dataclass(frozen=True)
class ModelChoice:
    name: str
    """What the user configured, e.g. `anthropic:claude-sonnet-4-5` or `offline`."""
    model: Model | str | None
    """None means the offline scaffolder."""

    @property
    def offline(self) -> bool:
        return self.model is None

    @property
    def runtime(self) -> ModelRuntime | None:
        return self.model.runtime if isinstance(self.model, BuildModel) else None


def runtime_settings(settings: Settings) -> tuple[RetryPolicy, RunLimits]:
    retry = RetryPolicy(
        max_retries=settings.model_max_retries,
        base_delay=settings.model_retry_base_s,
        max_delay=settings.model_retry_max_s,
    )
    limits = RunLimits(
        max_requests=settings.max_model_requests,
        max_tool_calls=settings.max_tool_calls,
        max_tokens=settings.max_run_tokens,
        max_seconds=settings.max_run_seconds,
    )
    return retry, limits


def configured_model_name(settings: Settings) -> str:
    """The model runs use when a request does not choose one. Cheap; never raises."""
    if settings.model:
        return settings.model
    return DEFAULT_ANTHROPIC_MODEL if settings.anthropic_api_key is not None else OFFLINE


def allowed_model_name(settings: Settings, override: str | None = None) -> str:
    """The model a run uses: the configured one, or a request's override the allow-list has."""
    default = configured_model_name(settings)
    if override is None or not override.strip() or override.strip() == default:
        return default
    override = override.strip()
    if any(fnmatch.fnmatchcase(override, pattern) for pattern in settings.allowed_models):
        return override
    allowed = ", ".join(settings.allowed_models) or "nothing else"
    raise ModelNotAllowed(
        f"The model {override!r} is not allowed on this server: it uses {default} and allows "
        f"{allowed}. To allow it, add it to SANDFORGE_ALLOWED_MODELS (comma-separated; * globs "
        "work) and restart sandforge."
    )


def _secret(value: SecretStr | None) -> str | None:
    return value.get_secret_value() if value is not None and value.get_secret_value() else None


def _sdk_settings(settings: Settings) -> ModelSettings:
    # sandforge retries itself (agent/retries.py), so the SDK clients make one attempt each.
    return ModelSettings(max_retries=0, timeout=settings.model_timeout_s)


def _anthropic(settings: Settings, name: str, model_name: str) -> tuple[Model, ProviderInfo]:
    from pydantic_ai.models.anthropic import AnthropicModel, AnthropicModelSettings
    from pydantic_ai.providers.anthropic import AnthropicProvider

    key = _secret(settings.anthropic_api_key)
    base_url = settings.anthropic_base_url or None
    if key is None and base_url is None:
        raise ModelConfigError(
            f"SANDFORGE_MODEL={name} needs an Anthropic API key: set ANTHROPIC_API_KEY "
            "(create one at https://console.anthropic.com/settings/keys) and restart sandforge."
        )
    info = ProviderInfo(
        kind="anthropic",
        label="Anthropic" if base_url is None else f"the Anthropic API at {base_url}",
        model_name=model_name,
        base_url=base_url,
        key_env="ANTHROPIC_API_KEY",
        base_url_env="ANTHROPIC_BASE_URL",
        key_set=key is not None,
    )
    model = AnthropicModel(
        model_name,
        provider=AnthropicProvider(api_key=key or NO_KEY_NEEDED, base_url=base_url),
        # Prompt caching: the system prompt and the tool definitions are the same on every
        # request of a build, so they are read from the cache after the first.
        settings=AnthropicModelSettings(
            max_retries=0,
            timeout=settings.model_timeout_s,
            anthropic_cache_instructions=True,
            anthropic_cache_tool_definitions=True,
        ),
    )
    return model, info


def _openai(
    settings: Settings, name: str, model_name: str, *, responses: bool
) -> tuple[Model, ProviderInfo]:
    from pydantic_ai.models.openai import OpenAIChatModel, OpenAIResponsesModel
    from pydantic_ai.providers.openai import OpenAIProvider

    key = _secret(settings.openai_api_key)
    base_url = settings.openai_base_url or None
    if key is None and base_url is None:
        raise ModelConfigError(
            f"SANDFORGE_MODEL={name} needs an OpenAI API key: set OPENAI_API_KEY "
            "(https://platform.openai.com/api-keys), or set OPENAI_BASE_URL to an "
            "OpenAI-compatible server (vLLM, LM Studio, ...), and restart sandforge."
        )
    info = ProviderInfo(
        kind="openai" if base_url is None else "openai-compatible",
        label="OpenAI" if base_url is None else f"the OpenAI-compatible server at {base_url}",
        model_name=model_name,
        base_url=base_url,
        key_env="OPENAI_API_KEY",
        base_url_env="OPENAI_BASE_URL",
        key_set=key is not None,
    )
    provider = OpenAIProvider(base_url=base_url, api_key=key or NO_KEY_NEEDED)
    model_class = OpenAIResponsesModel if responses else OpenAIChatModel
    return model_class(model_name, provider=provider, settings=_sdk_settings(settings)), info


def _ollama(settings: Settings, model_name: str) -> tuple[Model, ProviderInfo]:
    from pydantic_ai.models.ollama import OllamaModel
    from pydantic_ai.providers.ollama import OllamaProvider

    key = _secret(settings.ollama_api_key)
    base_url = settings.ollama_base_url
    info = ProviderInfo(
        kind="ollama",
        label=f"Ollama at {base_url}",
        model_name=model_name,
        base_url=base_url,
        key_env="OLLAMA_API_KEY",
        base_url_env="OLLAMA_BASE_URL",
        key_set=key is not None,
    )
    provider = OllamaProvider(base_url=base_url, api_key=key or NO_KEY_NEEDED)
    return OllamaModel(model_name, provider=provider, settings=_sdk_settings(settings)), info


def _from_factory(spec: str) -> Model:
    """`factory:package.module:callable` — a callable that returns a pydantic-ai Model."""
    target = spec.removeprefix("factory:")
    module_name, _, attr = target.partition(":")
    if not module_name or not attr:
        raise ModelConfigError(
            f"SANDFORGE_MODEL={spec!r}: expected factory:package.module:callable"
        )
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ModelConfigError(f"SANDFORGE_MODEL={spec!r}: {exc}") from exc
    model = factory()
    if not isinstance(model, Model):
        raise ModelConfigError(f"SANDFORGE_MODEL={spec!r} did not return a pydantic-ai Model")
    return model


def _other(name: str, provider_name: str, model_name: str) -> tuple[Model, ProviderInfo]:
    try:
        model = infer_model(name)
    except (UserError, ImportError, ValueError) as exc:
        raise ModelConfigError(
            f"SANDFORGE_MODEL={name!r} cannot be used: {exc}. sandforge supports anthropic:, "
            "openai:, openai-chat:, openai-responses:, ollama: and offline out of the box."
        ) from exc
    return model, ProviderInfo(kind=provider_name, label=provider_name, model_name=model_name)


def build_model(settings: Settings, name: str) -> tuple[Model, ProviderInfo]:
    """The pydantic-ai model for `name` (not `offline`), configured from `settings`."""
    if name.startswith("factory:"):
        return _from_factory(name), ProviderInfo(kind="factory", label=name, model_name=name)
    provider_name, sep, model_name = name.partition(":")
    if not sep or not provider_name or not model_name:
        raise ModelConfigError(
            f"SANDFORGE_MODEL={name!r}: expected provider:model, e.g. {DEFAULT_ANTHROPIC_MODEL}, "
            "openai-chat:gpt-4.1, ollama:qwen2.5-coder or offline"
        )
    if provider_name == "anthropic":
        return _anthropic(settings, name, model_name)
    if provider_name in ("openai", "openai-chat"):
        return _openai(settings, name, model_name, responses=False)
    if provider_name == "openai-responses":
        return _openai(settings, name, model_name, responses=True)
    if provider_name == "ollama":
        return _ollama(settings, model_name)
    return _other(name, provider_name, model_name)


def resolve_model(settings: Settings, override: str | None = None) -> ModelChoice:
    """The model for a run: `override` (a request's choice, checked against the allow-list) or
    the configured one. Raises ModelConfigError with the fix in its message."""
    name = allowed_model_name(settings, override)
    if name == OFFLINE:
        return ModelChoice(OFFLINE, None)
    model, info = build_model(settings, name)
    retry, limits = runtime_settings(settings)
    return ModelChoice(name, BuildModel(model, ModelRuntime(info, retry, limits)))


@dataclass(frozen=True)
class ModelOption:
    """A model a user may choose for a project, and whether it can run here."""

    name: str
    default: bool
    reads_images: bool
    problem: str | None
    """Why it cannot run (a missing key...), with the fix; None when it can."""


def _option(settings: Settings, name: str, default: bool) -> ModelOption:
    if name == OFFLINE:
        return ModelOption(name, default, reads_images=False, problem=None)
    try:
        _, info = build_model(settings, name)
    except ModelConfigError as exc:
        return ModelOption(name, default, reads_images=False, problem=str(exc))
    return ModelOption(name, default, reads_images=info.reads_images, problem=None)


def model_options(settings: Settings) -> tuple[list[ModelOption], list[str]]:
    """The configured model first, then each model SANDFORGE_ALLOWED_MODELS names exactly;
    and the allow-list's glob patterns, which name no model in particular."""
    default = configured_model_name(settings)
    exact = [p for p in settings.allowed_models if not any(c in p for c in "*?[")]
    patterns = [p for p in settings.allowed_models if p not in exact]
    names = [default, *(n for n in dict.fromkeys(exact) if n != default)]
    return [_option(settings, n, n == default) for n in names], patterns


def reads_images(settings: Settings, name: str | None) -> bool:
    """Whether the model a run would use (`name`, or the configured one) reads images."""
    return _option(settings, allowed_model_name(settings, name), default=False).reads_images
