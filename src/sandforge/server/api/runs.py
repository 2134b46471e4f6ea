"""Runs: start one (202), follow its events over SSE from any point, inspect, cancel.

The seed's two stream endpoints are a run seen through one POST.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import ValidationError

from ...events import encode_sse
from ...runs.request import GenerationRequest
from ...runs.supervisor import Run
from ..errors import ApiError
from ..services import Services

router = APIRouter()

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def services(request: Request) -> Services:
    svc: Services = request.app.state.services
    return svc


async def parse_generation_request(request: Request, svc: Services) -> GenerationRequest:
    """Validate the body completely before anything is created."""
    raw = await request.body()
    try:
        body = json.loads(raw)
    except ValueError:
        raise ApiError(400, "invalid_json", "The request body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_request", "The request body must be a JSON object.")
    try:
        generation = GenerationRequest.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        message = first["msg"].removeprefix("Value error, ")
        raise ApiError(
            400, "invalid_request", f"{where}: {message}" if where else message
        ) from None
    limit = svc.settings.max_prompt_chars
    if len(generation.prompt) > limit:
        raise ApiError(
            400,
            "prompt_too_large",
            f"The prompt is {len(generation.prompt)} characters; the limit is {limit} "
            "(SANDFORGE_MAX_PROMPT_CHARS).",
        )
    if len(generation.messages) > svc.settings.max_messages:
        raise ApiError(
            400,
            "too_many_messages",
            f"{len(generation.messages)} messages; the limit is {svc.settings.max_messages}.",
        )
    svc.check_provider(generation.sandbox)
    return generation


async def start_run(request: Request) -> Run:
    svc = services(request)
    generation = await parse_generation_request(request, svc)
    provider = svc.provider(svc.check_provider(generation.sandbox))
    return await svc.supervisor.start(generation, provider)


def sse_stream(run: Run, after: int = 0) -> StreamingResponse:
    async def frames() -> AsyncIterator[bytes]:
        async for seq, event in run.follow(after):
            yield encode_sse(seq, event)

    return StreamingResponse(frames(), media_type="text/event-stream", headers=SSE_HEADERS)


def run_summary(run: Run) -> dict[str, Any]:
    return {
        "runId": run.id,
        "state": run.state,
        "sandboxId": run.sandbox_id,
        "createdAt": run.created_at,
        "events": len(run.events),
        "projectType": run.request.projectType,
        "prompt": run.request.prompt,
    }


@router.post("/api/agent/stream-daytona")
async def stream_daytona(request: Request) -> StreamingResponse:
    """The seed's sandbox flow: a new run, streamed."""
    return sse_stream(await start_run(request))


@router.post("/api/agent/stream")
async def stream(request: Request) -> StreamingResponse:
    """The seed's traditional flow; for now it runs in a sandbox too."""
    return sse_stream(await start_run(request))


@router.post("/api/runs", status_code=202)
async def create_run(request: Request) -> JSONResponse:
    run = await start_run(request)
    return JSONResponse({"runId": run.id}, status_code=202)


@router.get("/api/runs")
async def list_runs(request: Request) -> dict[str, Any]:
    runs = sorted(services(request).supervisor.runs.values(), key=lambda r: r.created_at)
    return {"runs": [run_summary(r) for r in runs]}


@router.get("/api/runs/{run_id}")
async def get_run(run_id: str, request: Request) -> dict[str, Any]:
    return run_summary(services(request).supervisor.get(run_id))


@router.get("/api/runs/{run_id}/events")
async def run_events(run_id: str, request: Request, after: int | None = None) -> StreamingResponse:
    """Replays what comes after Last-Event-ID (or `?after=`), then tails."""
    run = services(request).supervisor.get(run_id)
    last_event_id = request.headers.get("last-event-id")
    if after is None and last_event_id is not None:
        if not last_event_id.isdigit():
            raise ApiError(400, "invalid_last_event_id", "Last-Event-ID must be an event number.")
        after = int(last_event_id)
    return sse_stream(run, after or 0)


@router.post("/api/runs/{run_id}/cancel")
async def cancel_run(run_id: str, request: Request) -> dict[str, Any]:
    run = await services(request).supervisor.cancel(run_id)
    return run_summary(run)
