"""Runs: start one (the seed's two streams, or 202), follow its events from any point, cancel.

Handlers only parse and format; what a run is and may do lives in projects/ and runs/.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse

from ...errors import InvalidRequest, NotFound
from ...events import Event, encode_sse
from ...runs.request import GenerationRequest
from ...runs.supervisor import LiveRun
from ...store.records import Flow
from ..body import read_json_model
from ..deps import ProjectsDep, SettingsDep, StoreDep, SupervisorDep
from ..views import run_json

router = APIRouter(tags=["runs"])

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
MAX_SEQ = 2**63 - 1
GENERATION_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": GenerationRequest.model_json_schema()}},
    }
}
STREAM_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {"description": "The run's events", "content": {"text/event-stream": {}}}
}


class InvalidLastEventId(InvalidRequest):
    code = "invalid_last_event_id"


class NoScreenshot(NotFound):
    code = "no_screenshot"


def sse_response(
    events: AsyncIterator[tuple[int, Event]], run: LiveRun | None = None
) -> StreamingResponse:
    async def frames() -> AsyncIterator[bytes]:
        async for seq, event in events:
            yield encode_sse(seq, event)

    headers = dict(SSE_HEADERS)
    if run is not None:
        headers |= {"x-sandforge-run-id": run.id, "x-sandforge-project-id": run.job.project_id}
    return StreamingResponse(frames(), media_type="text/event-stream", headers=headers)


async def _start(request: Request, projects: ProjectsDep, flow: Flow) -> LiveRun:
    generation = await read_json_model(request, GenerationRequest)
    return await projects.start_run(generation, flow)


@router.post("/api/agent/stream-daytona", openapi_extra=GENERATION_BODY, responses=STREAM_RESPONSE)
async def stream_daytona(request: Request, projects: ProjectsDep) -> StreamingResponse:
    """The seed's sandbox flow: a new run (or a follow-up), streamed."""
    run = await _start(request, projects, "sandbox")
    return sse_response(run.log.follow(), run)


@router.post("/api/agent/stream", openapi_extra=GENERATION_BODY, responses=STREAM_RESPONSE)
async def stream_persistent(request: Request, projects: ProjectsDep) -> StreamingResponse:
    """The seed's persistent flow: files go to the database and are served from there."""
    run = await _start(request, projects, "persistent")
    return sse_response(run.log.follow(), run)


@router.post("/api/runs", status_code=202, openapi_extra=GENERATION_BODY)
async def create_run(request: Request, projects: ProjectsDep) -> JSONResponse:
    """Start a run in a sandbox and answer at once; follow it at /api/runs/{id}/events."""
    run = await _start(request, projects, "sandbox")
    return JSONResponse(
        {"runId": run.id, "kind": "run", "projectId": run.job.project_id},
        status_code=202,
        headers={"x-sandforge-run-id": run.id, "x-sandforge-project-id": run.job.project_id},
    )


@router.get("/api/runs")
async def list_runs(store: StoreDep, projectId: str | None = None) -> dict[str, Any]:
    return {"runs": [run_json(r) for r in await store.list_runs(projectId)]}


@router.get("/api/runs/{run_id}")
async def get_run(run_id: str, store: StoreDep) -> dict[str, Any]:
    return run_json(await store.get_run(run_id))


def _last_event_id(header: str | None) -> int | None:
    if header is None:
        return None
    if not (header.isascii() and header.isdigit()) or int(header) > MAX_SEQ:
        raise InvalidLastEventId("Last-Event-ID must be an event number (the id: of an event).")
    return int(header)


@router.get("/api/runs/{run_id}/events", responses=STREAM_RESPONSE)
async def run_events(
    run_id: str,
    store: StoreDep,
    supervisor: SupervisorDep,
    after: Annotated[int | None, Query(ge=0, le=MAX_SEQ)] = None,
    last_event_id: Annotated[str | None, Header()] = None,
) -> StreamingResponse:
    """Replays what comes after Last-Event-ID (or `?after=`), then tails."""
    if run_id not in supervisor.runs:  # a live run is served from memory, store or not
        await store.get_run(run_id)
    if after is None:
        after = _last_event_id(last_event_id)
    return sse_response(supervisor.events(run_id, after or 0))


@router.post("/api/runs/{run_id}/cancel")
async def cancel_run(run_id: str, store: StoreDep, supervisor: SupervisorDep) -> dict[str, Any]:
    """Cancel a run; answers once it has ended (or after a bounded wait) with its state.

    A run live in this process is cancelled and reported from memory, which is ahead of
    the store while the store catches up, and works while the database is away."""
    run = await supervisor.cancel(run_id)
    if run is not None:
        return run_json(run.record())
    return run_json(await store.get_run(run_id))


@router.get(
    "/api/runs/{run_id}/screenshot",
    response_class=FileResponse,
    responses={200: {"content": {"image/png": {}}}},
)
async def run_screenshot(run_id: str, store: StoreDep, settings: SettingsDep) -> FileResponse:
    """The rendered check's screenshot of the run's preview."""
    await store.get_run(run_id)
    path = settings.data_dir / "screenshots" / f"{run_id}.png"
    if not await asyncio.to_thread(path.exists):
        raise NoScreenshot(f"Run {run_id} has no screenshot (no rendered check).")
    return FileResponse(path, media_type="image/png")
