"""Child-process entry point for one generation (the seed's child-process pattern).

Reads a job (JSON) on stdin and writes the pipeline's events as JSON lines to
the file descriptor given by --events-fd, keeping stdout and stderr free for logs.
SIGTERM cancels the run and still ends the stream with an `error` event.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
from typing import Any, BinaryIO

from pydantic import SecretStr

from ..agent.models import resolve_model
from ..config import Settings
from ..errors import SandforgeError
from ..events import Event, error, to_json
from ..projects.files import StoredFiles
from ..render import find_chromium
from ..render.remote import RemoteRenderCheck
from ..render.remote import socket_path as render_socket
from ..sandbox.local import RemoteLauncher
from ..sandbox.providers import make_provider
from ..store.repo import Store
from .job import RunJob
from .pipeline import PipelineInputs, run_pipeline
from .repair import RenderCheck


def settings_to_json(settings: Settings) -> dict[str, Any]:
    """Settings as plain JSON for a child process, secrets included (they stay on the host)."""
    values: dict[str, Any] = {}
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        values[name] = str(value) if isinstance(value, os.PathLike) else value
    return values


def render_check(settings: Settings) -> RenderCheck | None:
    """The server's rendered check, when it has one (it is on and Chromium is installed)."""
    if not settings.render_check or find_chromium(settings.chromium_path) is None:
        return None
    return RemoteRenderCheck(render_socket(settings), settings.render_timeout_s)


def _emit(out: BinaryIO, event: Event) -> None:
    out.write(to_json(event).encode() + b"\n")
    out.flush()


async def _generate(message: dict[str, Any], out: BinaryIO) -> None:
    settings = Settings.model_validate(message["settings"])
    job = RunJob.model_validate(message["job"])
    try:
        model = resolve_model(settings, job.request.model)
        provider = make_provider(job.provider, settings, RemoteLauncher(settings.control_socket))
    except SandforgeError as exc:
        _emit(out, error(exc.message, code=exc.code))
        return
    store = None
    if job.flow == "persistent":
        store = await Store.open(settings.database_url, settings.data_dir, upgrade=False)
    try:
        inputs = PipelineInputs(
            job=job, settings=settings, model=model, check=render_check(settings)
        )
        stored = StoredFiles(store, job.project_id) if store is not None else None
        async for event in run_pipeline(inputs, provider, stored):
            _emit(out, event)
    finally:
        await provider.aclose()
        if store is not None:
            await store.close()


async def _main(job: dict[str, Any], out: BinaryIO) -> None:
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    try:
        await _generate(job, out)
    except asyncio.CancelledError:
        _emit(out, error("The run was cancelled.", code="cancelled"))


def run_from_fds(job_fd: int, events_fd: int) -> None:
    """Read the job from `job_fd` to its end, run it, write events to `events_fd`."""
    with os.fdopen(job_fd, "rb") as source:
        message = json.loads(source.read())
    with os.fdopen(events_fd, "wb") as out:
        asyncio.run(_main(message, out))


def main() -> None:
    """The cold path: a fresh interpreter per run (the fork server is the warm one)."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--events-fd", type=int, required=True)
    args = parser.parse_args()
    run_from_fds(sys.stdin.fileno(), args.events_fd)


if __name__ == "__main__":
    main()
