"""One error tree: every failure sandforge reports is a SandforgeError with a code and a status.

A subclass names its `code` (stable, machine-readable, sent as `{"error": {"code"}}` or
as an `error` event's `code`) and inherits or sets its `http_status`. The families
below carry the statuses, so a new error picks its family and nothing else has to
change: the API answers with `http_status`, the wire protocols send `code`, and
`error_for_code` turns a code that crossed a socket back into the same class.

The message always says what happened and what to do about it.
"""

from __future__ import annotations

from typing import ClassVar, TypeVar


class SandforgeError(Exception):
    code: ClassVar[str] = "internal"
    http_status: ClassVar[int] = 500
    _registry: ClassVar[dict[str, list[type[SandforgeError]]]] = {}

    def __init_subclass__(cls) -> None:
        super().__init_subclass__()
        if "code" in cls.__dict__:
            SandforgeError._registry.setdefault(cls.code, []).append(cls)

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def to_json(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}


E = TypeVar("E", bound=SandforgeError)


class InvalidRequest(SandforgeError):
    code = "invalid_request"
    http_status = 400


class Unauthorized(SandforgeError):
    code = "unauthorized"
    http_status = 401


class Forbidden(SandforgeError):
    code = "forbidden"
    http_status = 403


class NotFound(SandforgeError):
    code = "not_found"
    http_status = 404


class Conflict(SandforgeError):
    code = "conflict"
    http_status = 409


class PayloadTooLarge(SandforgeError):
    code = "payload_too_large"
    http_status = 413


class UnsupportedMediaType(SandforgeError):
    code = "unsupported_media_type"
    http_status = 415


class TooManyRequests(SandforgeError):
    code = "too_many_requests"
    http_status = 429


class Unavailable(SandforgeError):
    """Something sandforge depends on is not configured or not reachable here."""

    code = "unavailable"
    http_status = 503


class InsufficientStorage(SandforgeError):
    code = "insufficient_storage"
    http_status = 507


def error_for_code(code: str, message: str, family: type[E]) -> E:
    """The error a peer reported by `code`, as the class of `family` that claims that code.

    Two families may use one code (a missing file is `file_not_found` whether a sandbox
    or the store lacks it), so the caller names the family it expects; a code the family
    does not know becomes the family's own base error.
    """
    for cls in SandforgeError._registry.get(code, ()):
        if issubclass(cls, family):
            return cls(message)
    return family(message)
