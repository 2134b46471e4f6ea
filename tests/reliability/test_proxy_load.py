"""The preview proxy under concurrency: ~1000 GETs, 50 at a time, through the proxy to a
real sandbox's dev server; every answer is a 200 with the whole body."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import httpx

from sandforge.events import CompleteEvent
from tests.conftest import LiveServer

from .models import SIZED_FILES, sized_content

REQUESTS = 1000
CONCURRENCY = 50


async def test_a_thousand_gets_at_fifty_at_once_all_arrive_whole(make_server: Any) -> None:
    server: LiveServer = await make_server(model="factory:tests.reliability.models:sized_files")
    events = await server.stream(
        "/api/agent/stream-daytona",
        {"messages": [{"role": "user", "content": "Make a page with big assets"}]},
    )
    final = events[-1][1]
    assert isinstance(final, CompleteEvent), final
    bodies = {f"/{name}": sized_content(name, size).encode() for name, size in SIZED_FILES.items()}
    paths = list(bodies)
    headers = {
        "host": server.preview_host(final.data.projectId or ""),
        "x-sandforge-preview-token": final.data.accessToken or "",
    }
    outcomes: Counter[str] = Counter()
    gate = asyncio.Semaphore(CONCURRENCY)

    async def get(client: httpx.AsyncClient, path: str) -> None:
        async with gate:
            try:
                response = await client.get(path, headers=headers)
            except httpx.HTTPError as exc:
                outcomes[f"{type(exc).__name__} on {path}"] += 1
                return
        if response.status_code != 200:
            outcomes[f"{response.status_code} on {path}"] += 1
        elif response.content != bodies[path]:
            outcomes[f"{len(response.content)} bytes on {path}"] += 1
        else:
            outcomes["whole"] += 1

    limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
    base = f"http://127.0.0.1:{server.settings.port}"
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=120) as client:
        gets = (get(client, paths[i % len(paths)]) for i in range(REQUESTS))
        await asyncio.wait_for(asyncio.gather(*gets), 600)
    assert outcomes == Counter({"whole": REQUESTS})
