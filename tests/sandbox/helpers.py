"""Helpers shared by the sandbox tests."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

SECRETS = {
    "ANTHROPIC_API_KEY": "fake-secret-never-inside",
    "DAYTONA_API_KEY": "dtn-test-secret-never-inside",
    "SANDFORGE_TEST_HOST_SECRET": "host-only-value",
}


def python(code: str) -> str:
    """A shell command running `code` with the sandbox's Python."""
    return "python3 - <<'PYEOF'\n" + code.strip() + "\nPYEOF\n"


async def wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() >= deadline:
            return False
        await asyncio.sleep(0.02)
    return True
