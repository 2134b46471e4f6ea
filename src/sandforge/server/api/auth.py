"""Signing in to the UI with the admin password, and out again."""

from __future__ import annotations

import asyncio
import hmac

from fastapi import APIRouter, Request, Response

from ...errors import InvalidRequest, Unauthorized
from ..bodies import SignIn
from ..body import read_json_model
from ..deps import services
from ..openapi import errors, json_body, operation_id
from ..security import SESSION_COOKIE, Sessions

router = APIRouter(tags=["auth"], generate_unique_id_function=operation_id)

FAILED_SIGN_IN_DELAY_S = 1.0
"""Each wrong password costs this long, so guessing is slow."""


class WrongPassword(Unauthorized):
    code = "wrong_password"


class NoPasswordSet(InvalidRequest):
    code = "no_password_set"


def _sessions(request: Request) -> Sessions | None:
    sessions: Sessions | None = request.app.state.sessions
    return sessions


@router.post(
    "/api/login",
    status_code=204,
    response_class=Response,
    openapi_extra=json_body(SignIn),
    responses=errors(400, 401, 413, 415),
)
async def sign_in(request: Request) -> Response:
    """Sign in with SANDFORGE_ADMIN_PASSWORD; sets the session cookie."""
    body = await read_json_model(request, SignIn)
    password = services(request).settings.admin_password
    sessions = _sessions(request)
    if password is None or sessions is None:
        raise NoPasswordSet("This server has no SANDFORGE_ADMIN_PASSWORD; use an API token.")
    if not hmac.compare_digest(body.password.encode(), password.get_secret_value().encode()):
        await asyncio.sleep(FAILED_SIGN_IN_DELAY_S)
        raise WrongPassword("That is not the password (SANDFORGE_ADMIN_PASSWORD).")
    response = Response(status_code=204)
    secure = request.url.scheme == "https"
    response.headers.append("set-cookie", sessions.cookie(sessions.issue(), secure))
    return response


@router.post("/api/logout", status_code=204, response_class=Response, responses=errors())
async def sign_out(request: Request) -> Response:
    response = Response(status_code=204)
    response.headers.append(
        "set-cookie", f"{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"
    )
    return response
