"""Who may see a private preview: the token, given once as `?token=`, then a cookie.

A `?token=` that matches sets a host-only cookie and redirects to the clean URL; the
header `x-sandforge-preview-token` works too. A `?token=` that is not ours is the
app's own (Vite's HMR socket uses one) and passes through untouched.
"""

from __future__ import annotations

import secrets
from urllib.parse import urlencode

from starlette.requests import HTTPConnection
from starlette.responses import RedirectResponse

TOKEN_COOKIE = "sandforge_preview_token"
TOKEN_HEADER = "x-sandforge-preview-token"
TOKEN_QUERY = "token"


def _same(given: str, token: str) -> bool:
    return secrets.compare_digest(given.encode(), token.encode())


def host_cookie(name: str, value: str, host: str, scheme: str) -> str:
    """Host-only (no Domain), so it never reaches another sandbox's preview.

    The preview usually sits in an iframe of another site (the sandforge page), where
    browsers keep only a partitioned `SameSite=None; Secure` cookie. That needs a secure
    origin: https, or http on *.localhost, which browsers treat as secure. Elsewhere the
    cookie stays `Lax`, good for opening the preview in its own tab.
    """
    hostname = host.rsplit(":", 1)[0]
    if scheme in ("https", "wss") or hostname == "localhost" or hostname.endswith(".localhost"):
        same_site = "SameSite=None; Secure; Partitioned"
    else:
        same_site = "SameSite=Lax"
    return f"{name}={value}; Path=/; HttpOnly; {same_site}"


def _matches(value: str | None, tokens: list[str]) -> str | None:
    if value is None:
        return None
    return next((token for token in tokens if _same(value, token)), None)


def carries_token(connection: HTTPConnection, tokens: list[str]) -> bool:
    """Whether the request carries one of the tokens in the query, the header or the cookie."""
    given = [
        connection.query_params.get(TOKEN_QUERY),
        connection.headers.get(TOKEN_HEADER),
        connection.cookies.get(TOKEN_COOKIE),
    ]
    return any(_matches(value, tokens) is not None for value in given)


def cookie_redirect(connection: HTTPConnection, tokens: list[str]) -> RedirectResponse | None:
    """For a first visit with `?token=`: set the cookie and redirect to the clean URL."""
    token = _matches(connection.query_params.get(TOKEN_QUERY), tokens)
    if token is None:
        return None
    return redirect_setting(connection, TOKEN_QUERY, TOKEN_COOKIE, token)


def redirect_setting(
    connection: HTTPConnection, query: str, cookie: str | None, value: str
) -> RedirectResponse:
    """A redirect to the URL without the `query` parameter, setting `cookie` to `value`
    (no cookie when None)."""
    rest = [(k, v) for k, v in connection.query_params.multi_items() if k != query]
    location = connection.url.path + (f"?{urlencode(rest)}" if rest else "")
    response = RedirectResponse(location, status_code=302)
    response.headers["cache-control"] = "no-store"
    if cookie is not None:
        host = connection.headers.get("host", "")
        response.headers.append(
            "set-cookie", host_cookie(cookie, value, host, connection.url.scheme)
        )
    return response
