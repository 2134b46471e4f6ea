"""Reading a JSON request body: bounded, off the event loop, and a 4xx for anything wrong.

Only `application/json` is read as JSON: a cross-site page can send `text/plain` with no
preflight, so accepting it would let any page start runs (issue: forged requests).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, TypeVar

from fastapi import Request
from pydantic import BaseModel, ValidationError

from ..errors import InvalidRequest, PayloadTooLarge, UnsupportedMediaType
from .deps import services

M = TypeVar("M", bound=BaseModel)

PARSE_INLINE_BYTES = 64 << 10
"""Bodies up to this size are parsed on the event loop; larger ones in a thread."""


class InvalidJson(InvalidRequest):
    code = "invalid_json"


class BodyTooLarge(PayloadTooLarge):
    code = "body_too_large"


class NotJson(UnsupportedMediaType):
    code = "unsupported_media_type"


def is_json_content_type(value: str | None) -> bool:
    media_type = (value or "").split(";", 1)[0].strip().lower()
    return media_type == "application/json" or (
        media_type.startswith("application/") and media_type.endswith("+json")
    )


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refused with a 413 as soon as it is known to be over `limit` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(f"The request body is {declared} bytes; the limit is {limit}.")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(f"The request body is over the {limit}-byte limit.")
        chunks.append(chunk)
    return b"".join(chunks)


def _parse(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except RecursionError:
        raise InvalidJson("The request body nests too deeply to be read.") from None
    except (ValueError, UnicodeDecodeError):
        raise InvalidJson("The request body is not valid JSON.") from None


async def read_json_model(request: Request, model: type[M]) -> M:
    """The body as `model`, validated completely before anything is created."""
    if not is_json_content_type(request.headers.get("content-type")):
        raise NotJson("Send the body as JSON, with Content-Type: application/json.")
    raw = await read_body(request, services(request).settings.max_body_bytes)
    body = _parse(raw) if len(raw) <= PARSE_INLINE_BYTES else await asyncio.to_thread(_parse, raw)
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        message = first["msg"].removeprefix("Value error, ")
        raise InvalidRequest(f"{where}: {message}" if where else message) from None
    except RecursionError:
        raise InvalidJson("The request body nests too deeply to be read.") from None
