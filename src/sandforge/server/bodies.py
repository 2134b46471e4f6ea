"""Request bodies of the API besides the generation request (runs/request.py)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

MAX_SHARE_SECONDS = 365 * 24 * 3600


class ShareRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    expiresInSeconds: float | None = Field(default=None, gt=0, le=MAX_SHARE_SECONDS)
    """The link stops working this long after it is made; without it, when revoked."""


class SignIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    password: str


MAX_PROJECT_NAME_CHARS = 80


def _utf8(text: str, what: str) -> str:
    """Text the store can keep: a lone surrogate (which JSON can spell) cannot be."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"{what} is not valid Unicode text (it has a lone surrogate)") from None
    return text


class FileEdit(BaseModel):
    """A file's new content, saved by hand (the Code tab's editor)."""

    model_config = ConfigDict(extra="forbid")

    content: str

    @field_validator("content")
    @classmethod
    def _encodable(cls, value: str) -> str:
        return _utf8(value, "content")


class ProjectUpdate(BaseModel):
    """Rename a project, or choose the model its runs use (`""`: the server's own)."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=MAX_PROJECT_NAME_CHARS)
    model: str | None = Field(default=None, max_length=200)

    @field_validator("name", "model")
    @classmethod
    def _encodable(cls, value: str | None) -> str | None:
        return None if value is None else _utf8(value.replace("\x00", ""), "the text")
