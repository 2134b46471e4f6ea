"""The package bridge: the npm registry and PyPI for sandboxes that have no network.

It runs in the server and listens on a unix socket that each sandbox sees at
REGISTRY_SOCKET; the toolbox daemon relays 127.0.0.1:REGISTRY_PORT inside to it, and npm
and pip are pointed there (REGISTRY_ENV). It answers GET and HEAD under three prefixes
only, each mapped onto one configured upstream, so nothing else is reachable through it:

- `/npm/<path>`          → the npm registry (package metadata is rewritten so tarballs
                           come back through the bridge)
- `/pypi/simple/<path>`  → PyPI's simple index (file links rewritten likewise)
- `/pypi/files/<path>`   → PyPI's file host

Everything fetched is cached on disk: tarballs and wheels until the cache outgrows its limit
(their URLs never change content; the least recently used go first, registry_cache.py),
metadata for METADATA_TTL_S, and stale metadata is served when the upstream fails. A second
install of a cached package therefore needs no upstream at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import re
import secrets
import ssl
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from ...config import Settings
from .registry_cache import PARTIAL_SUFFIX, RegistryCache

REGISTRY_PORT = 4873
REGISTRY_SOCKET = "/run/sandforge-registry.sock"
BRIDGE_URL = f"http://127.0.0.1:{REGISTRY_PORT}"
REGISTRY_ENV = {
    "npm_config_registry": f"{BRIDGE_URL}/npm/",
    "npm_config_audit": "false",
    "npm_config_fund": "false",
    "npm_config_update_notifier": "false",
    "PIP_INDEX_URL": f"{BRIDGE_URL}/pypi/simple/",
    "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    # /usr is read-only and the template's packages are a read-only mount: what the agent
    # adds goes to the user's site dir, on the sandbox's own disk.
    "PIP_USER": "1",
    "PIP_BREAK_SYSTEM_PACKAGES": "1",
}
"""What a sandbox with the bridge gets in its environment."""

SOCKET_ROOT = Path("/run/sandforge-registry")
METADATA_TTL_S = 600.0
DEFAULT_CACHE_LIMIT_BYTES = 4 << 30
UPSTREAM_TIMEOUT_S = 60.0
MAX_HEADER_BYTES = 16 << 10
_SAFE_PATH = re.compile(r"^[A-Za-z0-9@%._~+!=/-]*$")
_PASSED_HEADERS = ("accept",)


@dataclass(frozen=True)
class Registries:
    """The upstreams (mirrors may replace them: SANDFORGE_REGISTRY_*)."""

    npm: str = "https://registry.npmjs.org"
    pypi_simple: str = "https://pypi.org/simple"
    pypi_files: str = "https://files.pythonhosted.org"


@dataclass(frozen=True)
class _Route:
    kind: str
    upstream: str
    immutable: bool
    rewrite: tuple[str, str] | None


class RegistryBridge:
    def __init__(
        self,
        socket_path: Path,
        cache_dir: Path,
        registries: Registries,
        cache_limit_bytes: int = DEFAULT_CACHE_LIMIT_BYTES,
    ) -> None:
        self.socket_path = socket_path
        self.cache = RegistryCache(cache_dir, cache_limit_bytes)
        self.registries = registries
        self._server: asyncio.AbstractServer | None = None
        self._client: httpx.AsyncClient | None = None
        self._start_lock = asyncio.Lock()

    async def start(self) -> Path:
        """Listen (once); returns the socket's path."""
        async with self._start_lock:
            if self._server is None:
                await asyncio.to_thread(self._prepare_dirs)
                # The system's CA store (SSL_CERT_FILE honoured): mirrors behind a company CA.
                context = await asyncio.to_thread(ssl.create_default_context)
                self._client = httpx.AsyncClient(
                    timeout=UPSTREAM_TIMEOUT_S,
                    follow_redirects=False,
                    trust_env=False,
                    verify=context,
                )
                self._server = await asyncio.start_unix_server(
                    self._serve, path=str(self.socket_path)
                )
                # Every sandbox connects as its own uid; the socket reaches the registries only.
                os.chmod(self.socket_path, 0o666)
        return self.socket_path

    def _prepare_dirs(self) -> None:
        self.cache.load()
        self.socket_path.parent.mkdir(parents=True, exist_ok=True)
        self.socket_path.parent.chmod(0o755)
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()

    async def aclose(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
            self._server = None
            with contextlib.suppress(OSError):
                self.socket_path.unlink()
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def route(self, target: str) -> tuple[_Route, str] | None:
        """The upstream route and path for a request target, or None (refused)."""
        path = target.split("?", 1)[0]
        if not _SAFE_PATH.match(path) or ".." in path or "//" in path:
            return None
        r = self.registries
        routes = {
            "/npm/": _Route("npm", r.npm, False, (f"{r.npm}/", f"{BRIDGE_URL}/npm/")),
            "/pypi/simple/": _Route(
                "pypi-simple",
                r.pypi_simple,
                False,
                (f"{r.pypi_files}/", f"{BRIDGE_URL}/pypi/files/"),
            ),
            "/pypi/files/": _Route("pypi-files", r.pypi_files, True, None),
        }
        for prefix, route in routes.items():
            if path.startswith(prefix):
                rest = path[len(prefix) :]
                # npm's tarballs sit under `/-/`; they never change once published.
                immutable = route.immutable or "/-/" in rest
                return _Route(route.kind, route.upstream, immutable, route.rewrite), rest
        return None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            writer.close()
            return
        try:
            await self._answer(head, writer)
        except (ConnectionError, OSError):
            pass
        finally:
            with contextlib.suppress(ConnectionError, OSError):
                writer.close()
                await writer.wait_closed()

    async def _answer(self, head: bytes, writer: asyncio.StreamWriter) -> None:
        lines = head[:MAX_HEADER_BYTES].decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3:
            await _respond(writer, 400, b"bad request\n")
            return
        method, target, _ = parts
        if method not in ("GET", "HEAD"):
            await _respond(writer, 405, b"only GET and HEAD\n")
            return
        headers = {
            k.strip().lower(): v.strip()
            for k, _, v in (line.partition(":") for line in lines[1:] if ":" in line)
        }
        routed = self.route(target)
        if routed is None:
            await _respond(writer, 404, b"the package bridge serves npm and PyPI only\n")
            return
        route, rest = routed
        accept = headers.get("accept", "")
        cached = await self._fetch(route, rest, accept)
        if cached is None:
            await _respond(writer, 502, b"the registry did not answer\n")
            return
        status, content_type, path = cached
        await _respond_file(writer, status, content_type, path, send_body=method == "GET")

    async def _fetch(self, route: _Route, rest: str, accept: str) -> tuple[int, str, Path] | None:
        url = f"{route.upstream}/{rest}"
        # Keyed by what was asked, not by the upstream: a mirror swapped in (or an upstream
        # that went away) still finds what was fetched before.
        key = hashlib.sha256(f"{route.kind}/{rest}\n{accept}".encode()).hexdigest()
        body, meta = self.cache.body(key), self.cache.content_type(key)
        if await asyncio.to_thread(_fresh, body, route.immutable):
            self.cache.used(key)
        else:
            fetched = await self._download(url, accept, route, body, meta)
            if isinstance(fetched, tuple):
                return fetched
            if fetched:
                await asyncio.to_thread(self.cache.added, key)
            elif await asyncio.to_thread(body.exists):
                self.cache.used(key)
            else:
                return None
        content_type = await asyncio.to_thread(_read_type, meta)
        return 200, content_type, body

    async def _download(
        self, url: str, accept: str, route: _Route, body: Path, meta: Path
    ) -> bool | tuple[int, str, Path]:
        """Fetch `url` into the cache; True when cached, an uncached answer (a 404 from the
        registry) to pass on, or False when the upstream failed."""
        assert self._client is not None
        partial = body.with_name(f"{body.name}.{secrets.token_hex(8)}{PARTIAL_SUFFIX}")
        try:
            async with self._client.stream(
                "GET", url, headers={"accept": accept} if accept else {}
            ) as response:
                content_type = response.headers.get("content-type", "application/octet-stream")
                with partial.open("wb") as out:
                    async for chunk in response.aiter_bytes():
                        await asyncio.to_thread(out.write, chunk)
                if response.status_code != 200:
                    return response.status_code, content_type, partial
            if route.rewrite is not None:
                old, new = route.rewrite
                text = await asyncio.to_thread(partial.read_bytes)
                await asyncio.to_thread(
                    partial.write_bytes, text.replace(old.encode(), new.encode())
                )
            await asyncio.to_thread(_commit, partial, body, meta, content_type)
            return True
        except (httpx.HTTPError, OSError):
            await asyncio.to_thread(_discard, partial)
            return False


def _fresh(body: Path, immutable: bool) -> bool:
    try:
        age = time.time() - body.stat().st_mtime
    except FileNotFoundError:
        return False
    return immutable or age < METADATA_TTL_S


def _read_type(meta: Path) -> str:
    try:
        return meta.read_text()
    except FileNotFoundError:
        return "application/octet-stream"


def _commit(partial: Path, body: Path, meta: Path, content_type: str) -> None:
    meta.write_text(content_type)
    partial.rename(body)


def _discard(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink()


async def _respond(writer: asyncio.StreamWriter, status: int, body: bytes) -> None:
    writer.write(_head(status, "text/plain", len(body)) + body)
    await writer.drain()


async def _respond_file(
    writer: asyncio.StreamWriter, status: int, content_type: str, path: Path, *, send_body: bool
) -> None:
    size = await asyncio.to_thread(os.path.getsize, path)
    writer.write(_head(status, content_type, size))
    if send_body:
        with path.open("rb") as source:
            while chunk := await asyncio.to_thread(source.read, 1 << 20):
                writer.write(chunk)
                await writer.drain()
    await writer.drain()
    if status != 200:
        await asyncio.to_thread(_discard, path)  # an uncached answer


def _head(status: int, content_type: str, length: int) -> bytes:
    reason = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed"}
    return (
        f"HTTP/1.1 {status} {reason.get(status, 'Upstream')}\r\n"
        f"Content-Type: {content_type}\r\nContent-Length: {length}\r\n"
        "Connection: close\r\n\r\n"
    ).encode("latin-1")


def registry_bridge(settings: Settings) -> RegistryBridge:
    """The server's bridge. As root its socket sits in a dir every sandbox uid can traverse
    (the data dir may not be); one per server, since tests run several in one process."""
    name = f"{os.getpid()}-{secrets.token_hex(4)}.sock"
    directory = SOCKET_ROOT if os.geteuid() == 0 else settings.data_dir
    registries = Registries(
        npm=settings.registry_npm.rstrip("/"),
        pypi_simple=settings.registry_pypi.rstrip("/"),
        pypi_files=settings.registry_pypi_files.rstrip("/"),
    )
    return RegistryBridge(
        directory / name,
        settings.data_dir / "registry-cache",
        registries,
        cache_limit_bytes=settings.registry_cache_mb << 20,
    )
