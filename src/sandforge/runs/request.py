"""The generation request body (the seed's) and its validation rules."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable
from typing import Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    ValidationInfo,
    field_validator,
    model_validator,
)

from ..agent.prompts import PERSONAS
from ..chat import ChatMessage, PromptImage
from ..config import SandboxProviderName
from ..templates import TEMPLATES

MAX_PROJECT_NAME = 80
MAX_IMAGES = 4
ImageMediaType = Literal["image/png", "image/jpeg", "image/gif", "image/webp"]


class ImageInput(BaseModel):
    """An image sent with the prompt (pasted, dropped or attached), base64-encoded."""

    model_config = ConfigDict(strict=True, extra="forbid")

    mediaType: ImageMediaType
    data: str = Field(min_length=1)
    """The image's bytes, base64-encoded (standard alphabet, no data: prefix)."""

    @field_validator("data")
    @classmethod
    def _base64(cls, value: str) -> str:
        try:
            base64.b64decode(value, validate=True)
        except binascii.Error:
            raise ValueError("an image's data is not valid base64") from None
        return value

    def decoded(self) -> PromptImage:
        return PromptImage(data=base64.b64decode(self.data), media_type=self.mediaType)


def _check_text(text: str, what: str) -> str:
    """Text that every store and every process can carry: no NULs, no lone surrogates."""
    if "\x00" in text:
        raise ValueError(f"{what} contains a NUL character; remove it and send again")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"{what} is not valid Unicode text (it has a lone surrogate)") from None
    return text


def _choices(names: Iterable[str]) -> list[JsonValue]:
    return [*sorted(names)]


MAX_ELEMENTS = 5


class PickedElement(BaseModel):
    """An element the user pointed at in the preview, sent as context with the prompt. It
    comes from the app's page, so it is the app's word: bounded, and only ever text."""

    model_config = ConfigDict(strict=True, extra="forbid")

    selector: str = Field(min_length=1, max_length=500)
    tag: str = Field(default="", max_length=40)
    text: str = Field(default="", max_length=500)
    file: str | None = Field(default=None, max_length=300)
    line: int | None = Field(default=None, ge=1)

    @field_validator("selector", "tag", "text", "file")
    @classmethod
    def _readable(cls, value: str | None, info: ValidationInfo) -> str | None:
        return None if value is None else _check_text(value, f"an element's {info.field_name}")


class GenerationRequest(BaseModel):
    """The seed's `{messages, projectType, agents, projectName}`.

    Optional extras: `sandbox` (provider), `projectId` and `sandboxId` (for a follow-up),
    and `model`.
    """

    model_config = ConfigDict(
        strict=True,
        extra="ignore",
        json_schema_extra={
            "examples": [
                {"messages": [{"role": "user", "content": "Build a calculator"}]},
                {
                    "messages": [
                        {"role": "user", "content": "Build a todo list"},
                        {"role": "assistant", "content": "Done: a todo list with a form."},
                        {"role": "user", "content": "Add a button that clears the list"},
                    ],
                    "projectType": "web-app",
                    "agents": ["frontend-dev"],
                    "projectName": "Todo",
                },
            ]
        },
    )

    messages: list[ChatMessage] = Field(min_length=1)
    # Validated below with messages that list the choices; the enums document them.
    projectType: str = Field(default="web-app", json_schema_extra={"enum": _choices(TEMPLATES)})
    agents: list[str] = Field(
        default_factory=lambda: ["frontend-dev"],
        json_schema_extra={"items": {"type": "string", "enum": _choices(PERSONAS)}},
    )
    projectName: str | None = Field(default=None, max_length=MAX_PROJECT_NAME)
    sandbox: SandboxProviderName | None = None
    projectId: str | None = None
    sandboxId: str | None = None
    model: str | None = None
    """Override SANDFORGE_MODEL for this run, within SANDFORGE_ALLOWED_MODELS."""
    images: list[ImageInput] = Field(default_factory=list, max_length=MAX_IMAGES)
    """Images for the prompt, for models that read them (others refuse the request)."""
    elements: list[PickedElement] = Field(default_factory=list, max_length=MAX_ELEMENTS)
    """Elements the user pointed at in the preview; the model is told about them."""

    @field_validator("messages")
    @classmethod
    def _readable(cls, value: list[ChatMessage]) -> list[ChatMessage]:
        for message in value:
            _check_text(message.content, "a message")
        return value

    @field_validator("projectName", "projectId", "sandboxId", "model")
    @classmethod
    def _readable_field(cls, value: str | None, info: ValidationInfo) -> str | None:
        # The ids are looked up in the store, which cannot encode a lone surrogate.
        return None if value is None else _check_text(value, str(info.field_name))

    @field_validator("projectType")
    @classmethod
    def _known_type(cls, value: str) -> str:
        if value not in TEMPLATES:
            raise ValueError(f"unknown projectType {value!r}; choose one of {sorted(TEMPLATES)}")
        return value

    @field_validator("agents")
    @classmethod
    def _known_agents(cls, value: list[str]) -> list[str]:
        unknown = [a for a in value if a not in PERSONAS]
        if unknown:
            raise ValueError(f"unknown agents {unknown}; choose from {sorted(PERSONAS)}")
        return value

    @model_validator(mode="after")
    def _last_from_user(self) -> GenerationRequest:
        last = self.messages[-1]
        if last.role != "user":
            raise ValueError("the last message must come from the user")
        if not last.content.strip():
            raise ValueError("the prompt (the last user message) is empty; write what to build")
        return self

    @property
    def prompt(self) -> str:
        return self.messages[-1].content

    @property
    def prompt_images(self) -> tuple[PromptImage, ...]:
        return tuple(image.decoded() for image in self.images)

    @property
    def history(self) -> list[ChatMessage]:
        return self.messages[:-1]
