"""Who may talk to the UI and API, and from where.

Three checks run before any handler (previews never reach them; they have their own
tokens):

- **Trusted hosts.** Only loopback names and `SANDFORGE_ALLOWED_HOSTS` are answered.
  A page on `rebind.attacker.example` that re-points its name at 127.0.0.1 gets a 400,
  not the project list.
- **Same origin for every change.** A preview (`3000-<id>.localhost`) is same-site with
  a UI on `localhost`, so SameSite cookies do not stop it; a generated page could start
  runs, restore versions or stop sandboxes. Unsafe methods are refused (403) when the
  browser says the request is not same-origin (`Sec-Fetch-Site`), or its `Origin` is
  not this server's. Clients that are not browsers send neither and pass.
- **Authentication**, when `SANDFORGE_API_TOKENS` or `SANDFORGE_ADMIN_PASSWORD` is set
  (required off loopback): a bearer token, or the UI's signed session cookie.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
import secrets
import time
from pathlib import Path
from urllib.parse import quote, urlsplit

from starlette.requests import HTTPConnection
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from ..config import Settings
from ..errors import Unavailable

SESSION_COOKIE = "sandforge_session"
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
PUBLIC_PATHS = frozenset({"/login", "/api/login", "/api/health", "/favicon.ico"})
PUBLIC_PREFIXES = ("/static/",)


class InsecureBind(Unavailable):
    code = "insecure_bind"


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(settings: Settings) -> None:
    """Refuse to serve beyond loopback with no authentication: anyone could build and run."""
    if is_loopback(settings.host) or settings.auth_required:
        return
    raise InsecureBind(
        f"sandforge would listen on {settings.host}, reachable from other machines, with no "
        "authentication. Set SANDFORGE_ADMIN_PASSWORD (the UI's sign-in) and/or "
        "SANDFORGE_API_TOKENS (bearer tokens for API clients and the CLI), and "
        "SANDFORGE_ALLOWED_HOSTS to the name users reach it by; or bind to 127.0.0.1."
    )


def _hostname(host_header: str) -> str:
    return (urlsplit(f"//{host_header}").hostname or "").lower()


class Sessions:
    """The UI's sign-ins: `<expiry>.<nonce>.<mac>` cookies, signed with a key kept in the
    data dir (so a restart keeps people signed in)."""

    def __init__(self, key: bytes, hours: float) -> None:
        self.key = key
        self.seconds = hours * 3600

    @classmethod
    def load(cls, settings: Settings) -> Sessions:
        return cls(_session_key(settings.session_key_file), settings.session_hours)

    def _mac(self, payload: str) -> str:
        return hmac.new(self.key, payload.encode(), hashlib.sha256).hexdigest()

    def issue(self) -> str:
        payload = f"{int(time.time() + self.seconds)}.{secrets.token_hex(8)}"
        return f"{payload}.{self._mac(payload)}"

    def valid(self, cookie: str | None) -> bool:
        if not cookie or cookie.count(".") != 2:
            return False
        payload, mac = cookie.rsplit(".", 1)
        expiry = payload.split(".", 1)[0]
        return (
            hmac.compare_digest(mac, self._mac(payload))
            and expiry.isdigit()
            and int(expiry) > time.time()
        )

    def cookie(self, value: str, secure: bool, max_age: int | None = None) -> str:
        age = int(self.seconds) if max_age is None else max_age
        flags = "; Secure" if secure else ""
        return f"{SESSION_COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={age}{flags}"


def _session_key(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        key = secrets.token_bytes(32)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(key)
        return key


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


class Guard:
    """ASGI middleware in front of the UI and API (not the previews)."""

    def __init__(self, app: ASGIApp, settings: Settings, sessions: Sessions | None) -> None:
        self.app = app
        self.settings = settings
        self.sessions = sessions
        self.trusted = {h.lower() for h in settings.allowed_hosts}
        self.tokens = [t.get_secret_value().encode() for t in settings.api_tokens]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        refusal = self.refusal(HTTPConnection(scope))
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def refusal(self, connection: HTTPConnection) -> Response | None:
        host = connection.headers.get("host", "")
        hostname = _hostname(host)
        if not (is_loopback(hostname) or hostname in self.trusted):
            return _error(
                400,
                "untrusted_host",
                f"This server does not answer to {hostname or 'an empty Host'}. If that is "
                "its name, add it to SANDFORGE_ALLOWED_HOSTS.",
            )
        if connection.scope.get("method") in UNSAFE_METHODS and not _same_origin(connection):
            return _error(
                403,
                "cross_origin",
                "Changes are accepted only from sandforge's own pages (this request came from "
                "another origin, such as a preview). Use the sandforge UI, or an API client.",
            )
        if self.settings.auth_required and not self._authenticated(connection):
            return self._sign_in(connection)
        return None

    def _authenticated(self, connection: HTTPConnection) -> bool:
        path = connection.url.path
        if path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES):
            return True
        scheme, _, token = connection.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and token:
            given = token.strip().encode()
            if any(hmac.compare_digest(given, known) for known in self.tokens):
                return True
        return self.sessions is not None and self.sessions.valid(
            connection.cookies.get(SESSION_COOKIE)
        )

    def _sign_in(self, connection: HTTPConnection) -> Response:
        path = connection.url.path
        if path.startswith("/api/") or connection.scope["type"] == "websocket":
            how = "sign in at /login" if self.settings.admin_password else ""
            tokens = "send Authorization: Bearer <a token from SANDFORGE_API_TOKENS>"
            return _error(
                401,
                "unauthorized",
                f"Authentication required: {' or '.join(w for w in (how, tokens) if w)}.",
            )
        target = path + (f"?{connection.url.query}" if connection.url.query else "")
        return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)


def _same_origin(connection: HTTPConnection) -> bool:
    """Whether a browser says this request comes from a page of this very origin; requests
    that carry neither header come from clients that are not browsers."""
    fetch_site = connection.headers.get("sec-fetch-site")
    if fetch_site is not None:
        return fetch_site in ("same-origin", "none")
    origin = connection.headers.get("origin")
    if origin is None:
        return True
    # The host and port decide; a TLS proxy in front may make the schemes differ.
    return urlsplit(origin).netloc.lower() == connection.headers.get("host", "").lower()
