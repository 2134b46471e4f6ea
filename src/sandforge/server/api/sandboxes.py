"""Sandboxes: list, inspect, stop, start, delete, their files and their preview's status."""

from __future__ import annotations

import contextlib
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response

from ...projects.serving import DEV_PROCESS, preview_status, process_name
from ...store.errors import ProjectNotFound
from ...templates import WEB_APP, get_template
from ..deps import FleetDep, SettingsDep, StoreDep
from ..openapi import errors, first_file_link, operation_id
from ..responses import Files, Preview, Sandbox, Sandboxes
from ..views import preview_json, sandbox_json

router = APIRouter(tags=["sandboxes"], generate_unique_id_function=operation_id)

Port = Annotated[int, Query(ge=1, le=65535)]


@router.get("/api/sandboxes", responses={200: {"model": Sandboxes}, **errors(409)})
async def list_sandboxes(fleet: FleetDep, settings: SettingsDep) -> dict[str, Any]:
    return {"sandboxes": [sandbox_json(i, settings) for i in await fleet.list()]}


@router.get("/api/sandboxes/{sandbox_id}", responses={200: {"model": Sandbox}, **errors(404, 409)})
async def get_sandbox(sandbox_id: str, fleet: FleetDep, settings: SettingsDep) -> dict[str, Any]:
    sandbox = await fleet.find(sandbox_id)
    return sandbox_json(await sandbox.info(), settings)


@router.post(
    "/api/sandboxes/{sandbox_id}/stop",
    responses={200: {"model": Sandbox}, **errors(404, 409, 507)},
)
async def stop_sandbox(sandbox_id: str, fleet: FleetDep, settings: SettingsDep) -> dict[str, Any]:
    sandbox = await fleet.find(sandbox_id)
    await fleet.stop(sandbox)
    return sandbox_json(await sandbox.info(), settings)


@router.post(
    "/api/sandboxes/{sandbox_id}/start",
    responses={200: {"model": Sandbox}, **errors(404, 409, 507)},
)
async def start_sandbox(sandbox_id: str, fleet: FleetDep, settings: SettingsDep) -> dict[str, Any]:
    sandbox = await fleet.find(sandbox_id)
    await sandbox.start()
    return sandbox_json(await sandbox.info(), settings)


@router.delete(
    "/api/sandboxes/{sandbox_id}",
    status_code=204,
    response_class=Response,
    responses=errors(404, 409, 507),
)
async def delete_sandbox(sandbox_id: str, fleet: FleetDep) -> Response:
    await fleet.delete(await fleet.find(sandbox_id))
    return Response(status_code=204)


@router.get(
    "/api/sandboxes/{sandbox_id}/preview",
    responses={200: {"model": Preview}, **errors(400, 404, 409)},
)
async def sandbox_preview(
    sandbox_id: str,
    fleet: FleetDep,
    store: StoreDep,
    settings: SettingsDep,
    port: Port = WEB_APP.port,
) -> dict[str, Any]:
    """booting, ready, crashed or stopped, with the URL and the dev server's log tail."""
    sandbox = await fleet.find(sandbox_id)
    project_id = (await sandbox.info()).labels.get("project")
    render = await store.last_render(project_id) if project_id else None
    process = DEV_PROCESS
    if project_id:
        with contextlib.suppress(ProjectNotFound):
            template = get_template((await store.get_project(project_id)).project_type)
            # The log and status of the service on `port`, if the project type has one there.
            for service in template.services:
                if service.port == port:
                    process = process_name(template, service)
    status = await preview_status(sandbox, port, process)
    return preview_json(status, settings.preview_url(sandbox_id, port), sandbox.id, render)


@router.get(
    "/api/sandboxes/{sandbox_id}/files",
    responses={
        200: {"model": Files, "links": first_file_link("read_sandbox_file", "sandbox_id")},
        **errors(404, 409),
    },
)
async def list_sandbox_files(sandbox_id: str, fleet: FleetDep) -> dict[str, Any]:
    entries = await (await fleet.find(sandbox_id)).list_files()
    return {"files": [{"path": e.path, "size": e.size, "isDir": e.is_dir} for e in entries]}


@router.get(
    "/api/sandboxes/{sandbox_id}/files/{path:path}",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}}, **errors(400, 404, 409, 413)},
)
async def read_sandbox_file(sandbox_id: str, path: str, fleet: FleetDep) -> Response:
    content = await (await fleet.find(sandbox_id)).read_file(path)
    return Response(content, media_type="text/plain; charset=utf-8")
