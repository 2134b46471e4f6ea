"""Sandboxes: list, inspect, stop, start, delete, and the preview's status."""

from __future__ import annotations

import time
from typing import Any

import httpx
from fastapi import APIRouter, Request, Response

from ...runs.devserver import DEV_PROCESS
from ...sandbox import Sandbox, SandboxError, SandboxInfo, SandboxState
from ...sandbox.http import upstream_client
from ...templates import WEB_APP
from ..services import Services
from .runs import services

router = APIRouter()

PREVIEW_PROBE_TIMEOUT_S = 3.0


def sandbox_json(info: SandboxInfo, request: Request, port: int = WEB_APP.port) -> dict[str, Any]:
    settings = services(request).settings
    return {
        "id": info.id,
        "kind": "sandbox",
        "provider": info.provider,
        "state": info.state.value,
        "labels": info.labels,
        "projectId": info.labels.get("project"),
        "public": info.public,
        "createdAt": info.created_at,
        "ageSeconds": round(time.time() - info.created_at, 1),
        "previewUrl": settings.preview_url(info.id, port),
    }


@router.get("/api/sandboxes")
async def list_sandboxes(request: Request) -> dict[str, Any]:
    infos: list[SandboxInfo] = []
    for provider in services(request).configured_providers():
        infos += await provider.list()
    return {"sandboxes": [sandbox_json(i, request) for i in infos]}


@router.get("/api/sandboxes/{sandbox_id}")
async def get_sandbox(sandbox_id: str, request: Request) -> dict[str, Any]:
    sandbox = await services(request).find_sandbox(sandbox_id)
    return sandbox_json(await sandbox.info(), request)


@router.post("/api/sandboxes/{sandbox_id}/stop")
async def stop_sandbox(sandbox_id: str, request: Request) -> dict[str, Any]:
    sandbox = await services(request).find_sandbox(sandbox_id)
    services(request).forget_preview(sandbox_id)
    await sandbox.stop()
    return sandbox_json(await sandbox.info(), request)


@router.post("/api/sandboxes/{sandbox_id}/start")
async def start_sandbox(sandbox_id: str, request: Request) -> dict[str, Any]:
    sandbox = await services(request).find_sandbox(sandbox_id)
    await sandbox.start()
    return sandbox_json(await sandbox.info(), request)


@router.delete("/api/sandboxes/{sandbox_id}", status_code=204)
async def delete_sandbox(sandbox_id: str, request: Request) -> Response:
    sandbox = await services(request).find_sandbox(sandbox_id)
    services(request).forget_preview(sandbox_id)
    await sandbox.delete()
    return Response(status_code=204)


@router.get("/api/sandboxes/{sandbox_id}/preview")
async def preview_status(
    sandbox_id: str, request: Request, port: int = WEB_APP.port
) -> dict[str, Any]:
    """booting, ready, crashed or stopped, with the URL and the dev server's log tail."""
    svc = services(request)
    sandbox = await svc.find_sandbox(sandbox_id)
    return await sandbox_preview(svc, sandbox, svc.settings.preview_url(sandbox_id, port), port)


async def sandbox_preview(svc: Services, sandbox: Sandbox, url: str, port: int) -> dict[str, Any]:
    """The preview status of one sandbox's dev server (shared with the project endpoint)."""
    body: dict[str, Any] = {
        "sandboxId": sandbox.id,
        "url": url,
        "logTail": "",
        "render": svc.supervisor.renders.get(sandbox.id),
    }
    if (await sandbox.info()).state != SandboxState.STARTED:
        return {**body, "status": "stopped"}
    try:
        process = await sandbox.process_status(DEV_PROCESS)
    except SandboxError:
        return {**body, "status": "booting"}
    body["logTail"] = process.log_tail
    if not process.running:
        return {**body, "status": "crashed", "exitCode": process.exit_code}
    try:
        async with upstream_client(await sandbox.upstream(port), PREVIEW_PROBE_TIMEOUT_S) as client:
            response = await client.get("/")
        status = "ready" if response.status_code < 500 else "booting"
    except (httpx.HTTPError, SandboxError):
        status = "booting"
    return {**body, "status": status}


@router.get("/api/sandboxes/{sandbox_id}/files")
async def list_sandbox_files(sandbox_id: str, request: Request) -> dict[str, Any]:
    sandbox = await services(request).find_sandbox(sandbox_id)
    entries = await sandbox.list_files()
    return {"files": [{"path": e.path, "size": e.size, "isDir": e.is_dir} for e in entries]}


@router.get("/api/sandboxes/{sandbox_id}/files/{path:path}")
async def read_sandbox_file(sandbox_id: str, path: str, request: Request) -> Response:
    sandbox = await services(request).find_sandbox(sandbox_id)
    content = await sandbox.read_file(path)
    return Response(content, media_type="text/plain; charset=utf-8")
