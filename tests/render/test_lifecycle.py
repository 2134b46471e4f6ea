"""One warm browser serves many checks: at once, after it dies, and across recycling."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from sandforge.render import Renderer, jail

from .conftest import Preview

MakeRenderer = Callable[..., Awaitable[Renderer]]


def _identity(pid: int) -> tuple[int, str] | None:
    """(pid, start time) of a live process, which a reused pid does not share; None if gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return None
    return None if fields[0] in "ZX" else (pid, fields[19])


def _page(title: str) -> str:
    return f"<!doctype html><title>{title}</title><h1>{title}</h1>"


async def test_the_browser_survives_being_killed(
    preview: Preview, make_renderer: MakeRenderer
) -> None:
    preview.add("/", _page("Alive"))
    renderer = await make_renderer(concurrency=1)
    assert (await renderer.check(preview.url())).ok
    pids = await renderer.browser_pids()
    assert pids
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):  # gone with its parent already
            os.kill(pid, signal.SIGKILL)
    report = await renderer.check(preview.url())
    assert report.ok, report.to_json()
    assert report.title == "Alive"
    assert renderer.launches == 2
    assert not set(pids) & set(await renderer.browser_pids())


async def test_many_checks_at_once_all_complete(
    preview: Preview, make_renderer: MakeRenderer
) -> None:
    projects = [f"pj{n:04x}" for n in range(10)]
    for n, project in enumerate(projects):
        preview.add(f"/{project}", _page(f"App {n}"))
    renderer = await make_renderer(concurrency=3)
    reports = await asyncio.gather(
        *(renderer.check(preview.url(f"/{project}", project=project)) for project in projects)
    )
    assert [report.title for report in reports] == [f"App {n}" for n in range(10)]
    assert all(report.ok for report in reports), [r.problems() for r in reports]
    assert renderer.launches == 1
    for project in projects:
        assert {path for host, path in preview.seen if host == preview.host(project)} <= {
            f"/{project}",
            "/favicon.ico",
        }


async def test_the_browser_is_recycled_after_its_checks(
    preview: Preview, make_renderer: MakeRenderer
) -> None:
    preview.add("/", _page("Fresh"))
    renderer = await make_renderer(concurrency=1, recycle_after=2)
    first_browser = await renderer.browser_pids()
    first_identities = {_identity(pid) for pid in first_browser} - {None}
    reports = [await renderer.check(preview.url()) for _ in range(5)]
    assert all(report.ok for report in reports), [r.problems() for r in reports]
    assert renderer.launches == 3
    running = await renderer.browser_pids()
    assert running and not set(first_browser) & set(running)
    assert first_identities
    assert not first_identities & {_identity(pid) for pid in first_browser}


async def test_a_dead_renderers_directory_is_swept_and_a_live_ones_kept(
    preview: Preview, make_renderer: MakeRenderer
) -> None:
    code = "from sandforge.render import jail; print(jail.create()[0].root)"
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", code, stdout=asyncio.subprocess.PIPE
    )
    out, _ = await process.communicate()
    leftover = Path(out.decode().strip())  # its process is gone, and its lock with it
    before = _renderer_dirs()
    live = await make_renderer(concurrency=1)
    [live_dir] = _renderer_dirs() - before
    hour_ago = time.time() - 3600
    for directory in (leftover, live_dir):
        os.utime(directory, (hour_ago, hour_ago))
    await make_renderer(concurrency=1)
    remaining = _renderer_dirs()
    assert leftover not in remaining and live_dir in remaining
    preview.add("/", _page("Still here"))
    assert (await live.check(preview.url())).ok


def _renderer_dirs() -> set[Path]:
    return set(Path(tempfile.gettempdir()).glob(f"{jail.DIR_PREFIX}*"))
