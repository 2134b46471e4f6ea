"""A headless Chromium for the tests that look at previews the way a user does."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from sandforge.render import CHROMIUM_ARGS, find_chromium

CHROMIUM = find_chromium()


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (scripts/bootstrap installs it)")
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(
            executable_path=CHROMIUM, args=list(CHROMIUM_ARGS), headless=True
        )
        yield chromium
        await chromium.close()
