"""The rendered check on a warm, contained browser: latency of a check of a small page.

    PYTHONPATH=src .venv/bin/python -m bench.bench_render [--samples 30] [--gap 1.0]

A small static page (title, heading, a stylesheet, a script) is served by a real local
HTTP server and checked as `http://3000-pjbench.localhost:<port>/`, through the whole
containment path: bwrap'd Chromium, the forwarder in its network namespace, the filtering
proxy, the server. Each check takes a screenshot, as the pipeline's does. Three figures,
all on the server's default render settings (printed):

- spaced: one check at a time, each arriving `--gap` seconds after the last (the renderer
  has made its slot's spare context by then): what one run's check costs;
- back_to_back: one check right after another (spares are made while checks run);
- concurrent: `--samples` checks started at once, queueing beyond the concurrency bound.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import http.server
import json
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from sandforge.config import Settings
from sandforge.render import Renderer

from .common import ms, p50, p95

PAGE = {
    "index.html": "<!doctype html><html><head><title>Bench</title>"
    "<link rel=stylesheet href=/style.css></head><body><h1>Counter</h1>"
    "<button id=b>0</button><script src=/app.js></script></body></html>",
    "style.css": "body { font-family: sans-serif; } button { padding: 1em; }",
    "app.js": "const b = document.getElementById('b');\n"
    "b.onclick = () => { b.textContent = String(Number(b.textContent) + 1); };\n",
}


class _Quiet(http.server.SimpleHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass


def _serve(directory: Path) -> http.server.ThreadingHTTPServer:
    for name, text in PAGE.items():
        (directory / name).write_text(text)
    handler = functools.partial(_Quiet, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _figures(latencies: list[float]) -> dict[str, float]:
    return {"p50_ms": ms(p50(latencies)), "p95_ms": ms(p95(latencies)), "n": len(latencies)}


async def _timed(check: Callable[[], Awaitable[Any]]) -> float:
    start = time.perf_counter()
    report = await check()
    elapsed = time.perf_counter() - start
    assert report.ok, report.problems()
    return elapsed


async def bench(samples: int, gap_s: float) -> dict[str, Any]:
    settings = Settings()
    with tempfile.TemporaryDirectory() as tmp:
        server = _serve(Path(tmp))
        port = server.server_address[1]
        url = f"http://3000-pjbench.localhost:{port}/"
        shot = Path(tmp) / "shot.png"
        renderer = Renderer.from_settings(settings)
        renderer.upstream = ("127.0.0.1", port)
        try:
            started = time.perf_counter()
            await renderer.start()
            start_s = time.perf_counter() - started

            def check() -> Awaitable[Any]:
                return renderer.check(url, screenshot_path=shot)

            for _ in range(3):  # warm-up
                await check()
                await asyncio.sleep(gap_s)
            spaced = []
            for _ in range(samples):
                spaced.append(await _timed(check))
                await asyncio.sleep(gap_s)
            back_to_back = [await _timed(check) for _ in range(samples)]
            await asyncio.sleep(gap_s)
            wall = time.perf_counter()
            concurrent = await asyncio.gather(*(_timed(check) for _ in range(samples)))
            wall_s = time.perf_counter() - wall
        finally:
            await renderer.aclose()
            server.shutdown()
    return {
        "settings": {
            "render_concurrency": settings.render_concurrency,
            "render_recycle_after": settings.render_recycle_after,
            "render_timeout_s": settings.render_timeout_s,
            "screenshot": True,
            "gap_s": gap_s,
        },
        "chromium": renderer.executable,
        "chromium_sandbox": renderer.chromium_sandbox,
        "start_ms": ms(start_s),
        "launches": renderer.launches,
        "spaced": _figures(spaced),
        "back_to_back": _figures(back_to_back),
        "concurrent": {**_figures(list(concurrent)), "wall_ms": ms(wall_s)},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--samples", type=int, default=30)
    parser.add_argument("--gap", type=float, default=1.0, help="seconds between spaced checks")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(bench(args.samples, args.gap)), indent=2))


if __name__ == "__main__":
    main()
