"""Runs: start one (the seed's two streams, or 202), follow its events from any point, cancel.

Handlers only parse and format; what a run is and may do lives in projects/ and runs/.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse

from ...errors import InvalidRequest, NotFound
from ...projects.service import StartedRun
from ...runs.request import GenerationRequest
from ...runs.supervisor import Supervisor
from ...store.records import Flow
from ..body import read_json_model
from ..deps import ProjectsDep, ReplicaDep, SettingsDep, StoppingDep, StoreDep, SupervisorDep
from ..openapi import errors, event_stream, json_body, operation_id, run_links
from ..responses import Run, Runs, RunStarted
from ..sse import sse_stream
from ..views import run_json

router = APIRouter(tags=["runs"], generate_unique_id_function=operation_id)

MAX_SEQ = 2**63 - 1
RUN_ID_HEADER = "x-sandforge-run-id"
PROJECT_ID_HEADER = "x-sandforge-project-id"
GENERATION_ERRORS = errors(400, 404, 409, 413, 415, 429, 503, 507)
"""A bad body, an unknown projectId or sandboxId, a run already in flight, a server that
starts no new runs (shutting down, draining), a full disk."""
NEW_RUN_STREAM: dict[int | str, dict[str, Any]] = {
    200: {
        **event_stream(
            "The new run's events, until it ends.",
            headers={RUN_ID_HEADER: "The run's id.", PROJECT_ID_HEADER: "Its project's id."},
        ),
        "links": run_links(
            f"$response.header.{RUN_ID_HEADER}", f"$response.header.{PROJECT_ID_HEADER}"
        ),
    },
    **GENERATION_ERRORS,
}


class InvalidLastEventId(InvalidRequest):
    code = "invalid_last_event_id"


class NoScreenshot(NotFound):
    code = "no_screenshot"


def run_stream(
    run: StartedRun, supervisor: Supervisor, stopping: asyncio.Event
) -> StreamingResponse:
    """The run's events from its first: from memory when it runs here, else (replicas)
    from the store and the bus, whichever replica runs it."""
    headers = {RUN_ID_HEADER: run.id, PROJECT_ID_HEADER: run.project_id}
    return sse_stream(supervisor.events(run.id), stopping, run.id, headers)


async def _start(request: Request, projects: ProjectsDep, flow: Flow) -> StartedRun:
    generation = await read_json_model(request, GenerationRequest)
    return await projects.start_run(generation, flow)


@router.post(
    "/api/agent/stream-daytona",
    response_class=StreamingResponse,
    openapi_extra=json_body(GenerationRequest),
    responses=NEW_RUN_STREAM,
)
async def stream_daytona(
    request: Request, projects: ProjectsDep, supervisor: SupervisorDep, stopping: StoppingDep
) -> StreamingResponse:
    """The seed's sandbox flow: a new run (or a follow-up), streamed."""
    return run_stream(await _start(request, projects, "sandbox"), supervisor, stopping)


@router.post(
    "/api/agent/stream",
    response_class=StreamingResponse,
    openapi_extra=json_body(GenerationRequest),
    responses=NEW_RUN_STREAM,
)
async def stream_persistent(
    request: Request, projects: ProjectsDep, supervisor: SupervisorDep, stopping: StoppingDep
) -> StreamingResponse:
    """The seed's persistent flow: files go to the database and are served from there."""
    return run_stream(await _start(request, projects, "persistent"), supervisor, stopping)


@router.post(
    "/api/runs",
    status_code=202,
    openapi_extra=json_body(GenerationRequest),
    responses={
        202: {
            "model": RunStarted,
            "links": run_links("$response.body#/runId", "$response.body#/projectId"),
        },
        **GENERATION_ERRORS,
    },
)
async def create_run(request: Request, projects: ProjectsDep) -> JSONResponse:
    """Start a run in a sandbox and answer at once; follow it at /api/runs/{id}/events."""
    run = await _start(request, projects, "sandbox")
    return JSONResponse(
        {"runId": run.id, "kind": "run", "projectId": run.project_id},
        status_code=202,
        headers={RUN_ID_HEADER: run.id, PROJECT_ID_HEADER: run.project_id},
    )


@router.get("/api/runs", responses={200: {"model": Runs}, **errors()})
async def list_runs(store: StoreDep, projectId: str | None = None) -> dict[str, Any]:
    return {"runs": [run_json(r) for r in await store.list_runs(projectId)]}


@router.get("/api/runs/{run_id}", responses={200: {"model": Run}, **errors(404)})
async def get_run(run_id: str, store: StoreDep) -> dict[str, Any]:
    return run_json(await store.get_run(run_id))


def _last_event_id(header: str | None) -> int | None:
    if header is None:
        return None
    if not (header.isascii() and header.isdigit()) or int(header) > MAX_SEQ:
        raise InvalidLastEventId("Last-Event-ID must be an event number (the id: of an event).")
    return int(header)


@router.get(
    "/api/runs/{run_id}/events",
    response_class=StreamingResponse,
    responses={
        200: event_stream("The run's events after Last-Event-ID (or `after`), until it ends."),
        **errors(400, 404),
    },
)
async def run_events(
    run_id: str,
    store: StoreDep,
    supervisor: SupervisorDep,
    stopping: StoppingDep,
    after: Annotated[int | None, Query(ge=0, le=MAX_SEQ)] = None,
    last_event_id: Annotated[
        str | None,
        Header(
            description="Resume after this event (the `id:` of the last one received).",
            json_schema_extra={"pattern": "^[0-9]+$"},
        ),
    ] = None,
) -> StreamingResponse:
    """Replays what comes after Last-Event-ID (or `?after=`), then tails."""
    if run_id not in supervisor.runs:  # a live run is served from memory, store or not
        await store.get_run(run_id)
    resume = _last_event_id(last_event_id) or 0  # checked even when `after` wins
    events = supervisor.events(run_id, resume if after is None else after)
    return sse_stream(events, stopping, run_id)


@router.post("/api/runs/{run_id}/cancel", responses={200: {"model": Run}, **errors(404, 507)})
async def cancel_run(
    run_id: str, store: StoreDep, supervisor: SupervisorDep, replica: ReplicaDep
) -> dict[str, Any]:
    """Cancel a run; answers once it has ended (or after a bounded wait) with its state.

    A run live in this process is cancelled and reported from memory, which is ahead of
    the store while the store catches up, and works while the database is away. With
    replicas, one queued is cancelled in the store, and one running elsewhere by the
    replica running it."""
    run = await supervisor.cancel(run_id)
    if run is not None:
        return run_json(run.record())
    record = await store.get_run(run_id)
    if replica is not None and record.state == "running":
        await replica.cancel(run_id)
        record = await store.get_run(run_id)
    return run_json(record)


@router.get(
    "/api/runs/{run_id}/screenshot",
    response_class=FileResponse,
    responses={200: {"content": {"image/png": {}}}, **errors(404)},
)
async def run_screenshot(run_id: str, store: StoreDep, settings: SettingsDep) -> FileResponse:
    """The rendered check's screenshot of the run's preview."""
    await store.get_run(run_id)
    path = settings.data_dir / "screenshots" / f"{run_id}.png"
    if not await asyncio.to_thread(path.exists):
        raise NoScreenshot(f"Run {run_id} has no screenshot (no rendered check).")
    return FileResponse(path, media_type="image/png")
