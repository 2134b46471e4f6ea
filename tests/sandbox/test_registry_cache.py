"""The package bridge's cache stays under its limit: the least recently used packages go, the
ones in use stay, and a bridge started again knows what its cache holds."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from sandforge.sandbox.local.registry import Registries, RegistryBridge

PACKAGE_BYTES = 300_000
LIMIT_BYTES = 1_100_000  # three packages fit; a fourth evicts one


class _Wheels(BaseHTTPRequestHandler):
    """A file host: /<name> answers PACKAGE_BYTES bytes, and counts what it was asked."""

    asked: list[str] = []

    def do_GET(self) -> None:
        self.asked.append(self.path)
        body = self.path.encode().ljust(PACKAGE_BYTES, b".")
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def upstream() -> Iterator[str]:
    _Wheels.asked = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Wheels)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _bridge(tmp_path: Path, upstream: str) -> RegistryBridge:
    return RegistryBridge(
        tmp_path / "bridge.sock",
        tmp_path / "cache",
        Registries(npm=upstream, pypi_simple=upstream, pypi_files=upstream),
        cache_limit_bytes=LIMIT_BYTES,
    )


@pytest.fixture
async def bridge(tmp_path: Path, upstream: str) -> AsyncIterator[RegistryBridge]:
    bridge = _bridge(tmp_path, upstream)
    await bridge.start()
    yield bridge
    await bridge.aclose()


async def _get(bridge: RegistryBridge, name: str) -> bytes:
    transport = httpx.AsyncHTTPTransport(uds=str(bridge.socket_path))
    async with httpx.AsyncClient(transport=transport) as client:
        response = await client.get(f"http://bridge/pypi/files/{name}")
    assert response.status_code == 200
    return response.content


def _cached_bytes(directory: Path) -> int:
    return sum(p.stat().st_size for p in directory.iterdir())


async def test_the_least_recently_used_package_goes_when_the_cache_is_full(
    bridge: RegistryBridge, tmp_path: Path
) -> None:
    for name in ("a.whl", "b.whl", "c.whl"):
        assert (await _get(bridge, name)).startswith(f"/{name}".encode())
    await _get(bridge, "a.whl")  # a cache hit: a is now the most recently used
    assert _Wheels.asked == ["/a.whl", "/b.whl", "/c.whl"]

    await _get(bridge, "d.whl")  # over the limit: b, the least recently used, goes

    assert _cached_bytes(tmp_path / "cache") <= LIMIT_BYTES
    await _get(bridge, "a.whl")
    await _get(bridge, "c.whl")
    assert _Wheels.asked == ["/a.whl", "/b.whl", "/c.whl", "/d.whl"]
    await _get(bridge, "b.whl")
    assert _Wheels.asked[-1] == "/b.whl"


async def test_a_restarted_bridge_keeps_its_cache_within_the_limit(
    tmp_path: Path, upstream: str
) -> None:
    first = _bridge(tmp_path, upstream)
    await first.start()
    for name in ("a.whl", "b.whl", "c.whl"):
        await _get(first, name)
    await first.aclose()
    # A leftover download that never finished is dropped at start.
    (tmp_path / "cache" / "0123.abcd.part").write_bytes(b"x" * 1000)

    smaller = RegistryBridge(
        tmp_path / "bridge.sock",
        tmp_path / "cache",
        Registries(npm=upstream, pypi_simple=upstream, pypi_files=upstream),
        cache_limit_bytes=2 * PACKAGE_BYTES,
    )
    await smaller.start()
    try:
        assert _cached_bytes(tmp_path / "cache") <= 2 * PACKAGE_BYTES
        assert not list((tmp_path / "cache").glob("*.part"))
        await _get(smaller, "c.whl")  # the newest stayed
        assert _Wheels.asked == ["/a.whl", "/b.whl", "/c.whl"]
    finally:
        await smaller.aclose()
