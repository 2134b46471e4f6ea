"""Daytona SDK errors, translated into sandforge's: each message says what to do."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator

from daytona import (
    DaytonaAuthenticationError,
    DaytonaConnectionError,
    DaytonaError,
    DaytonaFileNotFoundError,
    DaytonaForbiddenError,
    DaytonaNotFoundError,
    DaytonaTimeoutError,
)

from ..base import (
    SandboxError,
    SandboxFileNotFound,
    SandboxNotFound,
    SandboxStopped,
    SandboxUnavailable,
)

_STOPPED_MESSAGE = re.compile(r"not (started|running)", re.IGNORECASE)


class DaytonaAuthError(SandboxUnavailable):
    """Daytona refused the API key (401) or its permissions (403)."""

    code = "daytona_unauthorized"


def _status(exc: DaytonaError) -> int | None:
    """The HTTP status behind `exc`; some SDK paths (file downloads) only keep it in the cause."""
    if exc.status_code is not None:
        return exc.status_code
    cause: BaseException | None = exc.__cause__ or exc.__context__
    for _ in range(5):
        if cause is None:
            break
        status = getattr(cause, "status_code", None) or getattr(cause, "status", None)
        if isinstance(status, int):
            return status
        cause = cause.__cause__ or cause.__context__
    return None


def translate(
    exc: DaytonaError, action: str, sandbox_id: str | None = None, path: str | None = None
) -> SandboxError:
    """The SandboxError (with a message that says what to do) for a Daytona SDK error."""
    status = _status(exc)
    detail = exc.message
    if isinstance(exc, DaytonaAuthenticationError) or status == 401:
        return DaytonaAuthError(
            f"Daytona rejected the API key (401 Unauthorized) when trying to {action}. "
            "Check DAYTONA_API_KEY in your .env (or environment), and DAYTONA_API_URL if you "
            "use a self-hosted Daytona, then restart sandforge."
        )
    if path is not None and (
        isinstance(exc, DaytonaFileNotFoundError)
        or exc.code == "FILE_NOT_FOUND"
        or (status == 404 and exc.code is None and "sandbox" not in detail.lower())
    ):
        return SandboxFileNotFound(f"{path!r} does not exist")
    if isinstance(exc, DaytonaForbiddenError) and path is None:
        return DaytonaAuthError(
            f"Daytona refused to {action} (403 Forbidden): the key in DAYTONA_API_KEY lacks "
            f"the permission for it. {detail}"
        )
    if isinstance(exc, DaytonaNotFoundError) or status == 404:
        what = f"sandbox {sandbox_id!r}" if sandbox_id else "the sandbox"
        return SandboxNotFound(
            f"Daytona has no {what}; it may have been deleted or expired. ({detail})"
        )
    if isinstance(exc, DaytonaConnectionError):
        return SandboxUnavailable(
            f"Cannot reach Daytona to {action}: {detail}. Check DAYTONA_API_URL and the network."
        )
    if isinstance(exc, DaytonaTimeoutError):
        return SandboxError(f"Daytona timed out when trying to {action}: {detail}")
    if status == 400 and _STOPPED_MESSAGE.search(detail):
        return SandboxStopped(
            f"Sandbox {sandbox_id} is not running, so sandforge cannot {action}. Start it "
            f"(POST /api/sandboxes/{sandbox_id}/start) and try again."
        )
    return SandboxError(f"Daytona could not {action}: {detail}")


@contextlib.contextmanager
def daytona_errors(
    action: str, sandbox_id: str | None = None, path: str | None = None
) -> Iterator[None]:
    try:
        yield
    except DaytonaError as exc:
        raise translate(exc, action, sandbox_id, path) from exc
