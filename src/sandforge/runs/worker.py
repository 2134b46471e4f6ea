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

from ..agent.models import ModelConfigError, resolve_model
from ..config import Settings
from ..events import Event, error, to_json
from ..sandbox import SandboxError
from ..sandbox.local import RemoteLauncher
from ..sandbox.providers import make_provider
from .pipeline import RunContext, run_pipeline
from .request import GenerationRequest


def settings_to_json(settings: Settings) -> dict[str, Any]:
    """Settings as plain JSON for a child process, secrets included (they stay on the host)."""
    values: dict[str, Any] = {}
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        values[name] = str(value) if isinstance(value, os.PathLike) else value
    return values


def _emit(out: BinaryIO, event: Event) -> None:
    out.write(to_json(event).encode() + b"\n")
    out.flush()


async def _generate(job: dict[str, Any], out: BinaryIO) -> None:
    settings = Settings.model_validate(job["settings"])
    request = GenerationRequest.model_validate(job["request"])
    try:
        model = resolve_model(settings)
        provider = make_provider(
            request.sandbox or settings.sandbox_provider,
            settings,
            RemoteLauncher(settings.control_socket),
        )
    except (ModelConfigError, SandboxError) as exc:
        _emit(out, error(str(exc), code=exc.code))
        return
    ctx = RunContext(
        run_id=job["run_id"],
        settings=settings,
        provider=provider,
        model=model,
        isolated=bool(job.get("isolated", True)),
    )
    async for event in run_pipeline(request, ctx):
        _emit(out, event)


async def _main(job: dict[str, Any], out: BinaryIO) -> None:
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    try:
        await _generate(job, out)
    except asyncio.CancelledError:
        _emit(out, error("The run was cancelled.", code="cancelled"))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events-fd", type=int, required=True)
    args = parser.parse_args()
    job = json.loads(sys.stdin.buffer.read())
    with os.fdopen(args.events_fd, "wb") as out:
        asyncio.run(_main(job, out))


if __name__ == "__main__":
    main()
