"""Which model builds: from SANDFORGE_MODEL, or Anthropic when its key is set, or offline."""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from pydantic_ai.models import Model

from ..config import Settings

DEFAULT_ANTHROPIC_MODEL = "anthropic:claude-sonnet-4-5"
OFFLINE = "offline"


class ModelConfigError(Exception):
    code = "model_config"


@dataclass(frozen=True)
class ModelChoice:
    name: str
    """What the user configured, e.g. `anthropic:claude-sonnet-4-5` or `offline`."""
    model: Model | str | None
    """None means the offline scaffolder."""

    @property
    def offline(self) -> bool:
        return self.model is None


def _from_factory(spec: str) -> Model:
    """`factory:package.module:callable` — a callable that returns a pydantic-ai Model."""
    target = spec.removeprefix("factory:")
    module_name, _, attr = target.partition(":")
    if not module_name or not attr:
        raise ModelConfigError(f"SANDFORGE_MODEL={spec!r}: expected factory:package.module:callable")
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ModelConfigError(f"SANDFORGE_MODEL={spec!r}: {exc}") from exc
    model = factory()
    if not isinstance(model, Model):
        raise ModelConfigError(f"SANDFORGE_MODEL={spec!r} did not return a pydantic-ai Model")
    return model


def resolve_model(settings: Settings) -> ModelChoice:
    name = settings.model
    if not name:
        if settings.anthropic_api_key is None:
            return ModelChoice(OFFLINE, None)
        name = DEFAULT_ANTHROPIC_MODEL
    if name == OFFLINE:
        return ModelChoice(OFFLINE, None)
    if name.startswith("factory:"):
        return ModelChoice(name, _from_factory(name))
    if ":" not in name:
        raise ModelConfigError(
            f"SANDFORGE_MODEL={name!r}: expected provider:model, e.g. {DEFAULT_ANTHROPIC_MODEL}"
        )
    return ModelChoice(name, name)
