"""Preview proxy versus a direct connection to the dev server's bridged socket, same run."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx

from sandforge.sandbox import Upstream
from sandforge.sandbox.http import upstream_client
from sandforge.sandbox.local import LocalSandboxProvider, RemoteLauncher

from .common import ms, p50, server

SMALL = b"<h1>small</h1>\n" * 10
LARGE = bytes(range(256)) * 4096  # 1 MiB


async def _latencies(client: httpx.AsyncClient, path: str, n: int, **kw: Any) -> list[float]:
    times = []
    for _ in range(n):
        start = time.perf_counter()
        response = await client.get(path, **kw)
        response.raise_for_status()
        times.append(time.perf_counter() - start)
    return times


async def proxy_vs_direct(samples: int) -> dict[str, Any]:
    with server() as srv:
        async with httpx.AsyncClient(base_url=srv.url, timeout=60) as client:
            body = {"messages": [{"role": "user", "content": "Build a timer"}]}
            complete: dict[str, Any] = {}
            async with client.stream("POST", "/api/agent/stream-daytona", json=body) as response:
                async for line in response.aiter_lines():
                    if line.startswith("data:"):
                        event = json.loads(line[5:])
                        if event["type"] == "complete":
                            complete = event["data"]
            sandbox_id = complete["sandboxId"]
            provider = LocalSandboxProvider(
                srv.data_dir / "sandboxes", RemoteLauncher(srv.data_dir / "sandboxd.sock")
            )
            sandbox = await provider.get(sandbox_id)
            await sandbox.write_file("small.html", SMALL)
            await sandbox.write_file("large.bin", LARGE)
            upstream: Upstream = await sandbox.upstream(3000)
            headers = srv.preview_headers(sandbox_id, (await sandbox.info()).preview_token)
            results: dict[str, Any] = {}
            async with upstream_client(upstream) as direct:
                for name, path in (("small", "/small.html"), ("1mb", "/large.bin")):
                    await _latencies(direct, path, 5)
                    await _latencies(client, path, 5, headers=headers)
                    d = await _latencies(direct, path, samples)
                    p = await _latencies(client, path, samples, headers=headers)
                    size = len(SMALL) if name == "small" else len(LARGE)
                    results[name] = {
                        "direct_ms_p50": ms(p50(d)),
                        "proxy_ms_p50": ms(p50(p)),
                        "added_ms_p50": ms(p50(p) - p50(d)),
                        "direct_mb_s": round(size / p50(d) / 1e6, 1),
                        "proxy_mb_s": round(size / p50(p) / 1e6, 1),
                        "throughput_ratio": round(p50(d) / p50(p), 2),
                        "n": samples,
                    }
    return results
