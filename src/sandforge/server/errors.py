"""Every API failure answers `{"error": {"code", "message"}}` with the status its error names.

Nothing answers a bare text 500: an exception no handler expected becomes an `internal`
500 in the same shape (and is still logged with its traceback), and a full disk, wherever
it surfaces (a file write or the database), is a 507 that says what to do.
"""

from __future__ import annotations

import errno
import sqlite3
from collections.abc import Mapping

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.routing import Match

from ..errors import InsufficientStorage, InvalidRequest, SandforgeError

_DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def error_response(
    status: int, code: str, message: str, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(
        {"error": {"code": code, "message": message}},
        status_code=status,
        headers=dict(headers or {}),
    )


def _is_disk_full(exc: BaseException) -> bool:
    """Whether `exc` or anything in its chain is a full disk.

    Wrappers hide the cause: SQLAlchemy wraps SQLite's `SQLITE_FULL`, and callers re-raise
    an `OSError(ENOSPC)` as their own error `from` it.
    """
    pending: list[BaseException] = [exc]
    seen: set[int] = set()
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in _DISK_FULL_ERRNOS:
            return True
        if getattr(current, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL:
            return True
        pending.extend(e for e in (current.__cause__, current.__context__) if e is not None)
    return False


def _allowed_methods(request: Request) -> str:
    """Every method some route answers at this path.

    Starlette's 405 names only the methods of the first route whose path matched, so
    `PUT /api/runs` would say `Allow: POST` although `GET /api/runs` exists too.
    """
    routes = request.app.router.routes
    return ", ".join(
        method
        for method in _METHODS
        if any(r.matches({**request.scope, "method": method})[0] is Match.FULL for r in routes)
    )


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(SandforgeError)
    async def _sandforge_error(request: Request, exc: SandforgeError) -> JSONResponse:
        return error_response(exc.http_status, exc.code, exc.message)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        # Bad input is a 400 like every other (FastAPI's default is a 422 in its own shape).
        first = exc.errors()[0] if exc.errors() else {"msg": "invalid request"}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        message = f"{where}: {first['msg']}" if where else first["msg"]
        return error_response(InvalidRequest.http_status, InvalidRequest.code, message)

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> JSONResponse:
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            headers["Allow"] = _allowed_methods(request) or headers.get("Allow", "")
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return error_response(exc.status_code, code, str(exc.detail), headers)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        # Starlette answers with this, then re-raises, so the server still logs the traceback.
        if _is_disk_full(exc):
            return error_response(
                InsufficientStorage.http_status,
                InsufficientStorage.code,
                "The server's disk is full, so this could not be saved. Free space in the "
                "server's data dir, then try again.",
            )
        return error_response(
            500,
            "internal",
            f"The server failed unexpectedly ({type(exc).__name__}); its log has the details. "
            "Try again, and report it if it keeps happening.",
        )
