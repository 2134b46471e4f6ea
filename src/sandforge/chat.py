"""A chat message: one type from the request body, through the store, to the model."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

Role = Literal["user", "assistant"]


class ChatMessage(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    role: Role
    content: str


class PromptImage(BaseModel):
    """An image sent with a prompt (or a screenshot of the preview), for models that read them."""

    model_config = ConfigDict(frozen=True)

    data: bytes
    media_type: str
