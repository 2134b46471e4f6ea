"""The live preview: POST until the preview answers 200 with the starter, and each written file
until the editor's frame shows it (issue 20).

A scripted model with a latency (it thinks 3 s before its first answer, then rewrites
index.html five times, 1.5 s apart) runs on the server's defaults. Chromium opens the
preview the way the UI's editor frame does (`?sandforge-frame=editor`), so a write shows
through the proxy's reload helper, as a user sees it.

    .venv/bin/python -m bench.bench_live [--runs N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from typing import Any

import httpx

from sandforge.render import CHROMIUM_ARGS, find_chromium

from .common import ROOT, BenchServer, ms, p50, p95, server

LIVE_WRITER = "factory:bench.scripted:live_writer"
VISIBLE_TIMEOUT_MS = 30_000


async def _preview_answers(
    client: httpx.AsyncClient, srv: BenchServer, data: dict[str, Any]
) -> None:
    """Poll the announced preview until it answers 200 with the starter."""
    target = data["previewUrl"].split("//", 1)[1].split("-", 1)[1].split(".", 1)[0]
    headers = srv.preview_headers(target, data.get("accessToken"))
    while True:
        response = await client.get("/", headers=headers)
        if response.status_code == 200 and "<h1>" in response.text:
            return
        await asyncio.sleep(0.01)


async def _shows(page: Any, version: int, written: float) -> float:
    """Seconds from `written` until the page shows `version` (or a later one)."""
    await page.wait_for_function(
        "v => Number(document.getElementById('version')?.textContent.split(' ')[1]) >= v",
        arg=version,
        timeout=VISIBLE_TIMEOUT_MS,
        polling=10,
    )
    return time.perf_counter() - written


async def _one_run(
    client: httpx.AsyncClient, srv: BenchServer, browser: Any, prompt: str
) -> tuple[float, list[float]]:
    """Seconds from the POST until the preview answers 200; per write, seconds from its `tool`
    event until the editor's frame shows it."""
    page = await browser.new_page()
    start = time.perf_counter()
    answered: float | None = None
    writes: list[asyncio.Task[float]] = []
    try:
        body = {"messages": [{"role": "user", "content": prompt}]}
        async with client.stream("POST", "/api/agent/stream-daytona", json=body) as response:
            async for line in response.aiter_lines():
                if not line.startswith("data:"):
                    continue
                event = json.loads(line[5:])
                data = event["data"]
                if event["type"] == "error":
                    raise RuntimeError(data["message"])
                if event["type"] == "progress" and data.get("previewUrl"):
                    await _preview_answers(client, srv, data)
                    answered = time.perf_counter() - start
                    url = f"{data['previewUrl']}?token={data['accessToken']}"
                    await page.goto(f"{url}&sandforge-frame=editor")
                if event["type"] == "tool" and data["action"] == "update":
                    shown = _shows(page, len(writes) + 1, time.perf_counter())
                    writes.append(asyncio.ensure_future(shown))
        visible = list(await asyncio.gather(*writes))
    finally:
        for task in writes:
            task.cancel()
        await page.close()
    if answered is None:
        raise RuntimeError("no progress event announced the preview")
    return answered, visible


async def bench(runs: int) -> dict[str, Any]:
    chromium = find_chromium()
    if chromium is None:
        raise RuntimeError("Chromium is not installed")
    from playwright.async_api import async_playwright

    answered: list[float] = []
    visible: list[float] = []
    args = [*CHROMIUM_ARGS, "--host-resolver-rules=MAP *.localhost 127.0.0.1"]
    with server(model=LIVE_WRITER) as srv:
        async with (
            httpx.AsyncClient(base_url=srv.url, timeout=120) as client,
            async_playwright() as playwright,
        ):
            browser = await playwright.chromium.launch(
                executable_path=chromium, args=args, headless=True
            )
            try:
                await _one_run(client, srv, browser, "Build a warm-up page")
                for index in range(runs):
                    first, writes = await _one_run(client, srv, browser, f"Build page {index}")
                    answered.append(first)
                    visible.extend(writes)
            finally:
                await browser.close()
    return {
        "preview_200_ms": {"p50": ms(p50(answered)), "p95": ms(p95(answered)), "n": runs},
        "write_visible_ms": {"p50": ms(p50(visible)), "p95": ms(p95(visible)), "n": len(visible)},
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    os.environ["PYTHONPATH"] = str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")
    sys.path.insert(0, str(ROOT))
    print(json.dumps(asyncio.run(bench(parser.parse_args().runs)), indent=2))


if __name__ == "__main__":
    main()
