"""A stand-in for GitHub: its REST API for repositories, and real git smart HTTP.

`FakeGitHub` is a real HTTP server on 127.0.0.1. Under `/api` it answers the REST calls
sandforge makes (`GET /user`, `GET /repos/{owner}/{repo}`, `POST /user/repos`,
`POST /orgs/{org}/repos`) in GitHub's shapes and status codes. Under `/git` it runs the
real `git http-backend` as CGI over bare repositories it keeps in a directory, so pushes
go through git's own smart-HTTP protocol. Every request must carry the token (Bearer for
the API, Basic `x-access-token:<token>` for git, as GitHub accepts); anything else gets
GitHub's 401.
"""

from __future__ import annotations

import base64
import json
import re
import subprocess
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, Self
from urllib.parse import urlsplit

LOGIN = "octo"
_REPO_PATH = re.compile(r"^/api/repos/(?P<owner>[^/]+)/(?P<name>[^/]+)$")


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: Any = None


@dataclass
class FakeGitHub:
    root: Path
    token: str = "ghp_faketoken123456"
    orgs: set[str] = field(default_factory=lambda: {"acme"})
    requests: list[Recorded] = field(default_factory=list)
    repos: dict[str, dict[str, Any]] = field(default_factory=dict)
    """full name -> the repository's JSON."""

    def __post_init__(self) -> None:
        self._server: ThreadingHTTPServer | None = None
        self._lock = threading.Lock()

    # -- lifecycle ---------------------------------------------------------------------------

    def __enter__(self) -> Self:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                fake._handle(self)

            def do_POST(self) -> None:
                fake._handle(self)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self._server is not None
        self._server.shutdown()
        self._server.server_close()

    @property
    def base(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def api_url(self) -> str:
        return f"{self.base}/api"

    def bare(self, full_name: str) -> Path:
        return self.root / f"{full_name}.git"

    def log(self, full_name: str) -> list[str]:
        """The pushed branch's commit subjects, newest first."""
        result = subprocess.run(
            ["git", "--git-dir", str(self.bare(full_name)), "log", "--format=%s", "main"],
            capture_output=True,
            text=True,
            check=True,
        )
        return result.stdout.splitlines()

    def add_repo(self, owner: str, name: str, private: bool = False) -> dict[str, Any]:
        full_name = f"{owner}/{name}"
        subprocess.run(
            ["git", "init", "-q", "--bare", "-b", "main", str(self.bare(full_name))], check=True
        )
        repo = {
            "id": len(self.repos) + 1,
            "name": name,
            "full_name": full_name,
            "private": private,
            "owner": {"login": owner},
            "html_url": f"{self.base}/{full_name}",
            "clone_url": f"{self.base}/git/{full_name}.git",
            "default_branch": "main",
        }
        self.repos[full_name] = repo
        return repo

    # -- requests ----------------------------------------------------------------------------

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        length = int(h.headers.get("content-length") or 0)
        body = h.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in h.headers.items()}
        path = urlsplit(h.path).path
        with self._lock:
            parsed = json.loads(body) if body and path.startswith("/api") else None
            self.requests.append(Recorded(h.command, h.path, headers, parsed))
        if path.startswith("/git/"):
            self._git(h, headers, body)
        elif path.startswith("/api/"):
            self._api(h, headers, path, parsed)
        else:
            self._json(h, 404, {"message": "Not Found"})

    def _json(
        self, h: BaseHTTPRequestHandler, status: int, body: Any, extra: dict[str, str] | None = None
    ) -> None:
        data = json.dumps(body).encode()
        h.send_response(status)
        h.send_header("content-type", "application/json; charset=utf-8")
        h.send_header("content-length", str(len(data)))
        for key, value in (extra or {}).items():
            h.send_header(key, value)
        h.end_headers()
        h.wfile.write(data)

    def _api(
        self, h: BaseHTTPRequestHandler, headers: dict[str, str], path: str, body: Any
    ) -> None:
        if headers.get("authorization") not in (f"Bearer {self.token}", f"token {self.token}"):
            self._json(h, 401, {"message": "Bad credentials", "status": "401"})
            return
        if h.command == "GET" and path == "/api/user":
            self._json(h, 200, {"login": LOGIN, "id": 1})
        elif h.command == "GET" and (match := _REPO_PATH.match(path)):
            repo = self.repos.get(f"{match['owner']}/{match['name']}")
            self._json(h, 200, repo) if repo else self._json(h, 404, {"message": "Not Found"})
        elif h.command == "POST" and path in (
            "/api/user/repos",
            *(f"/api/orgs/{o}/repos" for o in self.orgs),
        ):
            owner = LOGIN if path == "/api/user/repos" else path.split("/")[3]
            name = (body or {}).get("name", "")
            if not re.fullmatch(r"[A-Za-z0-9._-]{1,100}", name):
                self._json(h, 422, {"message": "Validation Failed"})
            elif f"{owner}/{name}" in self.repos:
                self._json(
                    h,
                    422,
                    {
                        "message": "Repository creation failed.",
                        "errors": [{"field": "name", "message": "name already exists"}],
                    },
                )
            else:
                self._json(h, 201, self.add_repo(owner, name, bool(body.get("private"))))
        else:
            self._json(h, 404, {"message": "Not Found"})

    def _git(self, h: BaseHTTPRequestHandler, headers: dict[str, str], body: bytes) -> None:
        expected = base64.b64encode(f"x-access-token:{self.token}".encode()).decode()
        if headers.get("authorization") != f"Basic {expected}":
            h.send_response(401)
            h.send_header("www-authenticate", 'Basic realm="GitHub"')
            h.send_header("content-length", "0")
            h.end_headers()
            return
        url = urlsplit(h.path)
        env = {
            "GIT_PROJECT_ROOT": str(self.root),
            "GIT_HTTP_EXPORT_ALL": "1",
            "PATH_INFO": url.path.removeprefix("/git"),
            "QUERY_STRING": url.query,
            "REQUEST_METHOD": h.command,
            "CONTENT_TYPE": headers.get("content-type", ""),
            "CONTENT_LENGTH": str(len(body)),
            "REMOTE_USER": "x-access-token",
            "REMOTE_ADDR": "127.0.0.1",
            "PATH": "/usr/bin:/bin",
        }
        if headers.get("content-encoding"):
            env["HTTP_CONTENT_ENCODING"] = headers["content-encoding"]
        if headers.get("git-protocol"):
            env["GIT_PROTOCOL"] = headers["git-protocol"]
        result = subprocess.run(
            ["git", "http-backend"], input=body, env=env, capture_output=True, check=False
        )
        head, _, payload = result.stdout.partition(b"\r\n\r\n")
        status, cgi_headers = 200, []
        for line in head.decode("latin-1").split("\r\n"):
            key, _, value = line.partition(":")
            if key.lower() == "status":
                status = int(value.strip().split()[0])
            elif key:
                cgi_headers.append((key, value.strip()))
        h.send_response(status)
        for key, value in cgi_headers:
            h.send_header(key, value)
        h.send_header("content-length", str(len(payload)))
        h.end_headers()
        h.wfile.write(payload)
