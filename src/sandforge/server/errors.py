"""Every API failure answers `{"error": {"code", "message"}}` with a status that fits."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from ..runs.supervisor import RunNotFound
from ..sandbox import (
    PathEscapeError,
    SandboxDiskFull,
    SandboxError,
    SandboxFileNotFound,
    SandboxFileTooLarge,
    SandboxNotFound,
    SandboxUnavailable,
)
from ..store.repo import ProjectNotFound, StoreError, VersionNotFound


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def error_response(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


def _sandbox_status(exc: SandboxError) -> int:
    if isinstance(exc, SandboxFileTooLarge):
        return 413
    if isinstance(exc, SandboxDiskFull):
        return 507
    if isinstance(exc, SandboxNotFound | SandboxFileNotFound):
        return 404
    if isinstance(exc, PathEscapeError):
        return 400
    if isinstance(exc, SandboxUnavailable):
        return 400
    return 409


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.code, exc.message)

    @app.exception_handler(SandboxError)
    async def _sandbox_error(request: Request, exc: SandboxError) -> JSONResponse:
        return error_response(_sandbox_status(exc), exc.code, str(exc))

    @app.exception_handler(StoreError)
    async def _store_error(request: Request, exc: StoreError) -> JSONResponse:
        status = 404 if isinstance(exc, ProjectNotFound | VersionNotFound) else 409
        return error_response(status, exc.code, str(exc))

    @app.exception_handler(RunNotFound)
    async def _run_not_found(request: Request, exc: RunNotFound) -> JSONResponse:
        return error_response(404, exc.code, str(exc))

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {"msg": "invalid request"}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        return error_response(
            400, "invalid_request", f"{where}: {first['msg']}" if where else first["msg"]
        )

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return error_response(exc.status_code, code, str(exc.detail))
