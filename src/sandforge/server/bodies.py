"""Request bodies of the API besides the generation request (runs/request.py)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

MAX_SHARE_SECONDS = 365 * 24 * 3600


class ShareRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    expiresInSeconds: float | None = Field(default=None, gt=0, le=MAX_SHARE_SECONDS)
    """The link stops working this long after it is made; without it, when revoked."""


class SignIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    password: str
