"""Runs: start one (202), follow its events over SSE from any point, inspect, cancel.

The seed's two stream endpoints are a run seen through one POST.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
from pydantic import ValidationError

from ...agent.models import ModelConfigError, allowed_model_name
from ...events import Event, encode_sse
from ...runs.job import Flow
from ...runs.request import GenerationRequest
from ...runs.supervisor import Run
from ...store.errors import ProjectNotFound
from ...store.records import ProjectRecord, RunRecord
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
    try:
        allowed_model_name(svc.settings, generation.model)
    except ModelConfigError as exc:
        raise ApiError(400, exc.code, str(exc)) from None
    return generation


async def start_run(request: Request, flow: Flow) -> Run:
    """Validate, find the project a follow-up continues, then start the run."""
    svc = services(request)
    generation = await parse_generation_request(request, svc)
    project: ProjectRecord | None = None
    if generation.projectId:
        try:
            project = await svc.store.get_project(generation.projectId)
        except ProjectNotFound:
            raise ApiError(
                404, "project_not_found", f"No project {generation.projectId!r}."
            ) from None
    elif generation.sandboxId:
        try:
            project = await svc.store.project_by_sandbox(generation.sandboxId)
        except ProjectNotFound as exc:
            raise ApiError(404, "sandbox_not_found", exc.message) from None
    provider = svc.provider(project.provider if project else generation.sandbox)
    return await svc.supervisor.start(generation, provider, flow, project)


def sse_frames(events: AsyncIterator[tuple[int, Event]]) -> StreamingResponse:
    async def frames() -> AsyncIterator[bytes]:
        async for seq, event in events:
            yield encode_sse(seq, event)

    return StreamingResponse(frames(), media_type="text/event-stream", headers=SSE_HEADERS)


def sse_stream(run: Run, after: int = 0) -> StreamingResponse:
    return sse_frames(run.follow(after))


def run_summary(record: RunRecord) -> dict[str, Any]:
    return {
        "runId": record.id,
        "kind": "run",
        "projectId": record.project_id,
        "state": record.state,
        "sandboxId": record.sandbox_id,
        "createdAt": record.created_at,
        "finishedAt": record.finished_at,
        "events": record.events,
        "tokensUsed": record.tokens_used,
        "projectType": record.request.get("projectType"),
        "prompt": (record.request.get("messages") or [{}])[-1].get("content", ""),
    }


async def run_record(svc: Services, run_id: str) -> RunRecord:
    return await svc.store.get_run(run_id)


def _run_headers(run: Run) -> dict[str, str]:
    return {"x-sandforge-run-id": run.id, "x-sandforge-project-id": run.job.project_id}


@router.post("/api/agent/stream-daytona")
async def stream_daytona(request: Request) -> StreamingResponse:
    """The seed's sandbox flow: a new run, streamed."""
    run = await start_run(request, "sandbox")
    response = sse_stream(run)
    response.headers.update(_run_headers(run))
    return response


@router.post("/api/agent/stream")
async def stream(request: Request) -> StreamingResponse:
    """The seed's persistent flow: files go to the database and are served from there."""
    run = await start_run(request, "persistent")
    response = sse_stream(run)
    response.headers.update(_run_headers(run))
    return response


@router.post("/api/runs", status_code=202)
async def create_run(request: Request) -> JSONResponse:
    run = await start_run(request, "sandbox")
    return JSONResponse(
        {"runId": run.id, "projectId": run.job.project_id},
        status_code=202,
        headers=_run_headers(run),
    )


@router.get("/api/runs")
async def list_runs(request: Request, projectId: str | None = None) -> dict[str, Any]:
    records = await services(request).store.list_runs(projectId)
    return {"runs": [run_summary(r) for r in records]}


@router.get("/api/runs/{run_id}")
async def get_run(run_id: str, request: Request) -> dict[str, Any]:
    return run_summary(await run_record(services(request), run_id))


@router.get("/api/runs/{run_id}/events")
async def run_events(run_id: str, request: Request, after: int | None = None) -> StreamingResponse:
    """Replays what comes after Last-Event-ID (or `?after=`), then tails."""
    svc = services(request)
    await run_record(svc, run_id)
    last_event_id = request.headers.get("last-event-id")
    if after is None and last_event_id is not None:
        if not last_event_id.isdigit():
            raise ApiError(400, "invalid_last_event_id", "Last-Event-ID must be an event number.")
        after = int(last_event_id)
    return sse_frames(svc.supervisor.events(run_id, after or 0))


@router.post("/api/runs/{run_id}/cancel")
async def cancel_run(run_id: str, request: Request) -> dict[str, Any]:
    svc = services(request)
    record = await run_record(svc, run_id)
    if record.state == "running":
        run = await svc.supervisor.cancel(run_id)
        async for _ in run.follow(len(run.events)):
            pass
    return run_summary(await run_record(svc, run_id))


@router.get("/api/runs/{run_id}/screenshot")
async def run_screenshot(run_id: str, request: Request) -> FileResponse:
    """The rendered check's screenshot of the run's preview."""
    svc = services(request)
    await run_record(svc, run_id)
    path = svc.settings.data_dir / "screenshots" / f"{run_id}.png"
    if not await asyncio.to_thread(path.exists):
        raise ApiError(404, "no_screenshot", f"Run {run_id} has no screenshot (no rendered check).")
    return FileResponse(path, media_type="image/png")
