"""Model selection: SANDFORGE_MODEL, the SDKs' variables, base URLs and the request allow-list."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic_ai.models.anthropic import AnthropicModel
from pydantic_ai.models.ollama import OllamaModel
from pydantic_ai.models.openai import OpenAIChatModel, OpenAIResponsesModel

from sandforge.agent.models import (
    DEFAULT_ANTHROPIC_MODEL,
    OFFLINE,
    BuildModel,
    ModelConfigError,
    ModelNotAllowed,
    configured_model_name,
    resolve_model,
)
from sandforge.config import Settings
from tests.agent.conftest import make_settings


def wrapped(settings: Settings, override: str | None = None) -> BuildModel:
    model = resolve_model(settings, override).model
    assert isinstance(model, BuildModel)
    return model


def test_no_setting_and_no_key_is_offline(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    choice = resolve_model(settings)
    assert choice.offline and choice.name == OFFLINE and choice.runtime is None
    assert configured_model_name(settings) == OFFLINE


def test_an_anthropic_key_alone_selects_claude(tmp_path: Path) -> None:
    choice = resolve_model(make_settings(tmp_path, anthropic_api_key="fake-anthropic-key"))
    assert choice.name == DEFAULT_ANTHROPIC_MODEL
    model = choice.model
    assert isinstance(model, BuildModel) and isinstance(model.wrapped, AnthropicModel)
    assert model.model_name == "claude-sonnet-4-5"
    settings = model.settings or {}
    # sandforge retries itself, and caches the system prompt and the tool definitions.
    assert settings.get("max_retries") == 0
    assert settings.get("anthropic_cache_instructions") is True
    assert settings.get("anthropic_cache_tool_definitions") is True
    assert choice.runtime is not None
    assert choice.runtime.provider.key_env == "ANTHROPIC_API_KEY"
    assert choice.runtime.provider.label == "Anthropic"


def test_the_sdk_variables_work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "fake-anthropic-env-key")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", "http://anthropic.internal")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://vllm.internal:8001/v1")
    monkeypatch.setenv("OLLAMA_BASE_URL", "http://gpu-box:11434/v1")
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.anthropic_api_key is not None
    assert settings.anthropic_api_key.get_secret_value() == "fake-anthropic-env-key"
    assert settings.anthropic_base_url == "http://anthropic.internal"
    assert settings.openai_api_key is not None
    assert settings.openai_api_key.get_secret_value() == "sk-env"
    assert settings.openai_base_url == "http://vllm.internal:8001/v1"
    assert settings.ollama_base_url == "http://gpu-box:11434/v1"

    anthropic = wrapped(settings)
    assert anthropic.runtime.provider.base_url == "http://anthropic.internal"
    assert "anthropic.internal" in anthropic.base_url  # type: ignore[operator]
    openai = wrapped(settings.model_copy(update={"model": "openai-chat:qwen2.5-coder"}))
    assert isinstance(openai.wrapped, OpenAIChatModel)
    assert openai.base_url == "http://vllm.internal:8001/v1/"
    assert openai.runtime.provider.kind == "openai-compatible"
    assert "OpenAI-compatible server at http://vllm.internal:8001/v1" in (
        openai.runtime.provider.label
    )


def test_a_sandforge_variable_wins_over_the_sdk_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", "http://global/v1")
    monkeypatch.setenv("SANDFORGE_OPENAI_BASE_URL", "http://for-sandforge/v1")
    monkeypatch.setenv("SANDFORGE_MODEL", "openai-chat:m")
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.openai_base_url == "http://for-sandforge/v1"
    assert wrapped(settings).base_url == "http://for-sandforge/v1/"


def test_openai_needs_a_key_or_a_base_url(tmp_path: Path) -> None:
    with pytest.raises(ModelConfigError) as info:
        resolve_model(make_settings(tmp_path, model="openai-chat:gpt-4.1"))
    assert "OPENAI_API_KEY" in str(info.value) and "OPENAI_BASE_URL" in str(info.value)
    # A local OpenAI-compatible server needs no key.
    local = wrapped(
        make_settings(tmp_path, model="openai:llama3", openai_base_url="http://127.0.0.1:1234/v1")
    )
    assert isinstance(local.wrapped, OpenAIChatModel)
    assert not local.runtime.provider.key_set


def test_anthropic_model_without_a_key(tmp_path: Path) -> None:
    with pytest.raises(ModelConfigError) as info:
        resolve_model(make_settings(tmp_path, model="anthropic:claude-opus-4-1"))
    assert "ANTHROPIC_API_KEY" in str(info.value)


def test_openai_responses_and_ollama(tmp_path: Path) -> None:
    responses = wrapped(
        make_settings(tmp_path, model="openai-responses:gpt-4.1", openai_api_key="sk-x")
    )
    assert isinstance(responses.wrapped, OpenAIResponsesModel)
    assert responses.runtime.provider.label == "OpenAI"
    ollama = wrapped(make_settings(tmp_path, model="ollama:qwen2.5-coder"))
    assert isinstance(ollama.wrapped, OllamaModel)
    assert ollama.base_url == "http://127.0.0.1:11434/v1/"
    assert ollama.runtime.provider.key_env == "OLLAMA_API_KEY"
    assert ollama.runtime.provider.base_url_env == "OLLAMA_BASE_URL"


def test_runtime_comes_from_settings(tmp_path: Path) -> None:
    model = wrapped(
        make_settings(
            tmp_path,
            model="ollama:m",
            model_max_retries=7,
            model_retry_base_s=0.5,
            max_model_requests=12,
            max_tool_calls=34,
            max_run_tokens=56,
            max_run_seconds=78,
        )
    )
    assert model.runtime.retry.max_retries == 7 and model.runtime.retry.base_delay == 0.5
    limits = model.runtime.limits
    assert (limits.max_requests, limits.max_tool_calls, limits.max_tokens) == (12, 34, 56)
    assert limits.max_seconds == 78
    usage_limits = limits.usage_limits()
    assert usage_limits.request_limit == 12 and usage_limits.tool_calls_limit == 34


def test_defaults_suit_a_whole_app_build(tmp_path: Path) -> None:
    limits = wrapped(make_settings(tmp_path, model="ollama:m")).runtime.limits
    assert limits.max_requests > 50  # pydantic-ai's default of 50 is too low for a build
    assert limits.max_tool_calls >= limits.max_requests


@pytest.mark.parametrize("name", ["gpt-4.1", "anthropic:", ":model"])
def test_malformed_names(tmp_path: Path, name: str) -> None:
    with pytest.raises(ModelConfigError) as info:
        resolve_model(make_settings(tmp_path, model=name))
    assert "expected provider:model" in str(info.value)


def test_unknown_provider(tmp_path: Path) -> None:
    with pytest.raises(ModelConfigError) as info:
        resolve_model(make_settings(tmp_path, model="nosuchprovider:model"))
    assert "cannot be used" in str(info.value)


def test_factory_models_are_wrapped(tmp_path: Path) -> None:
    model = wrapped(
        make_settings(tmp_path, model="factory:tests.scripted.scripted_models:calculator")
    )
    assert model.model_name == "scripted-calculator"
    assert model.runtime.provider.kind == "factory"


def test_request_override_outside_the_allow_list(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, anthropic_api_key="fake-anthropic-key")
    with pytest.raises(ModelNotAllowed) as info:
        resolve_model(settings, "ollama:qwen2.5-coder")
    message = str(info.value)
    assert info.value.code == "model_not_allowed"
    assert "'ollama:qwen2.5-coder' is not allowed" in message
    assert "SANDFORGE_ALLOWED_MODELS" in message and DEFAULT_ANTHROPIC_MODEL in message


def test_request_override_within_the_allow_list(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SANDFORGE_ALLOWED_MODELS", "ollama:*, anthropic:claude-haiku-4-5,offline")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "fake-anthropic-key")
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.allowed_models == ["ollama:*", "anthropic:claude-haiku-4-5", "offline"]

    assert resolve_model(settings).name == DEFAULT_ANTHROPIC_MODEL
    assert resolve_model(settings, DEFAULT_ANTHROPIC_MODEL).name == DEFAULT_ANTHROPIC_MODEL
    assert resolve_model(settings, "ollama:llama3.1").name == "ollama:llama3.1"
    assert wrapped(settings, "anthropic:claude-haiku-4-5").model_name == "claude-haiku-4-5"
    assert resolve_model(settings, "offline").offline
    with pytest.raises(ModelNotAllowed):
        resolve_model(settings, "anthropic:claude-opus-4-1")
