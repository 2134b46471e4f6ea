"""Projects: their conversation, files, versions (list, diff, restore) and live viewers."""

from __future__ import annotations

import contextlib
import difflib
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import StreamingResponse

from ...events import encode_sse, encode_sse_comment
from ...ids import kind_of
from ...runs.supervisor import git_commit
from ...sandbox import SandboxNotFound
from ...store.records import ProjectRecord
from ...templates import get_template
from ..errors import ApiError
from .runs import SSE_HEADERS, run_summary, services
from .sandboxes import sandbox_json, sandbox_preview

router = APIRouter()


def project_json(project: ProjectRecord, request: Request) -> dict[str, Any]:
    settings = services(request).settings
    return {
        "id": project.id,
        "kind": "project",
        "name": project.name,
        "projectType": project.project_type,
        "flow": project.flow,
        "agents": project.agents,
        "provider": project.provider,
        "sandboxId": project.sandbox_id,
        "public": project.public,
        "previewUrl": settings.preview_url(project.id, get_template(project.project_type).port),
        "accessToken": None if project.public else project.preview_token,
        "createdAt": project.created_at,
        "updatedAt": project.updated_at,
    }


@router.get("/api/projects")
async def list_projects(request: Request) -> dict[str, Any]:
    projects = await services(request).store.list_projects()
    return {"projects": [project_json(p, request) for p in projects]}


@router.get("/api/projects/{project_id}")
async def get_project(project_id: str, request: Request) -> dict[str, Any]:
    store = services(request).store
    project = await store.get_project(project_id)
    messages = [m.model_dump() for m in await store.history(project_id)]
    return {**project_json(project, request), "messages": messages}


@router.delete("/api/projects/{project_id}", status_code=204)
async def delete_project(project_id: str, request: Request) -> Response:
    svc = services(request)
    project = await svc.store.get_project(project_id)
    if project.sandbox_id:
        try:
            sandbox = await svc.provider(project.provider).get(project.sandbox_id)
            await sandbox.delete()
        except SandboxNotFound:
            pass
    svc.forget_preview(project_id, project.sandbox_id)
    await svc.store.delete_project(project_id)
    return Response(status_code=204)


@router.get("/api/sessions/{any_id}")
async def get_session(any_id: str, request: Request) -> dict[str, Any]:
    """Everything the UI needs to reopen a project, from the id of it, its run or its sandbox."""
    svc = services(request)
    kind = kind_of(any_id) or "sandbox"
    if kind == "run":
        project = await svc.store.get_project((await svc.store.get_run(any_id)).project_id)
    elif kind == "sandbox":
        project = await svc.store.project_by_sandbox(any_id)
    else:
        project = await svc.store.get_project(any_id)
    messages = [m.model_dump() for m in await svc.store.history(project.id)]
    runs = [run_summary(r) for r in await svc.store.list_runs(project.id)]
    sandbox = None
    if project.sandbox_id:
        with contextlib.suppress(SandboxNotFound):
            found = await svc.provider(project.provider).get(project.sandbox_id)
            sandbox = sandbox_json(await found.info(), request)
    return {
        "id": any_id,
        "kind": kind,
        "project": {**project_json(project, request), "messages": messages},
        "runs": runs,
        "sandbox": sandbox,
        "sandboxGone": project.sandbox_id is not None and sandbox is None,
    }


@router.get("/api/projects/{project_id}/preview")
async def project_preview(project_id: str, request: Request) -> dict[str, Any]:
    """The project's preview status; `stopped` when its sandbox is gone (opening rebuilds it)."""
    svc = services(request)
    project = await svc.store.get_project(project_id)
    port = get_template(project.project_type).port
    url = svc.settings.preview_url(project.id, port)
    if project.flow == "persistent":
        return {"status": "ready", "url": url, "logTail": "", "sandboxId": None}
    try:
        if project.sandbox_id is None:
            raise SandboxNotFound(project.id)
        sandbox = await svc.provider(project.provider).get(project.sandbox_id)
    except SandboxNotFound:
        return {"status": "stopped", "url": url, "logTail": "", "sandboxId": None}
    return await sandbox_preview(svc, sandbox, url, port)


@router.get("/api/projects/{project_id}/files")
async def list_project_files(project_id: str, request: Request) -> dict[str, Any]:
    store = services(request).store
    await store.get_project(project_id)
    sizes = await store.file_sizes(project_id)
    return {"files": [{"path": p, "size": s, "isDir": False} for p, s in sizes.items()]}


@router.get("/api/projects/{project_id}/files/{path:path}")
async def read_project_file(project_id: str, path: str, request: Request) -> Response:
    content = await services(request).store.read_file(project_id, path)
    return Response(content, media_type="text/plain; charset=utf-8")


@router.get("/api/projects/{project_id}/versions")
async def list_versions(project_id: str, request: Request) -> dict[str, Any]:
    store = services(request).store
    await store.get_project(project_id)
    return {
        "versions": [
            {
                "number": v.number,
                "message": v.message,
                "runId": v.run_id,
                "commit": v.commit,
                "files": v.files,
                "createdAt": v.created_at,
            }
            for v in await store.list_versions(project_id)
        ]
    }


def _text(content: bytes | None) -> list[str]:
    if content is None:
        return []
    return content.decode("utf-8", errors="replace").splitlines(keepends=True)


@router.get("/api/projects/{project_id}/diff")
async def diff_versions(
    project_id: str, request: Request, from_: int | None = None, to: int | None = None
) -> dict[str, Any]:
    """Unified diffs per changed file between two versions (`?from_=1&to=3`)."""
    if from_ is None or to is None:
        raise ApiError(400, "invalid_request", "Give both versions: ?from_=N&to=M.")
    store = services(request).store
    old = await store.version_files(project_id, from_)
    new = await store.version_files(project_id, to)
    files = []
    for path in sorted(set(old) | set(new)):
        if old.get(path) == new.get(path):
            continue
        status = "added" if path not in old else "deleted" if path not in new else "modified"
        diff = "".join(
            difflib.unified_diff(
                _text(old.get(path)), _text(new.get(path)), f"a/{path}", f"b/{path}"
            )
        )
        files.append({"path": path, "status": status, "diff": diff})
    return {"from": from_, "to": to, "files": files}


@router.post("/api/projects/{project_id}/versions/{number}/restore")
async def restore_version(project_id: str, number: int, request: Request) -> dict[str, Any]:
    """Make version `number`'s files current again, as a new version: nothing is lost."""
    svc = services(request)
    project = await svc.store.get_project(project_id)
    if svc.run_in_flight(project_id):
        raise ApiError(409, "run_in_flight", "A run is changing this project; wait for it to end.")
    files = await svc.store.version_files(project_id, number)
    message = f"Restore version {number}"
    commit = None
    if project.flow == "sandbox":
        sandbox = await svc.serving_sandbox(project)
        for entry in await sandbox.list_files():
            if not entry.is_dir and entry.path not in files:
                await sandbox.delete_file(entry.path)
        for path, content in files.items():
            await sandbox.write_file(path, content)
        commit = await git_commit(sandbox, message)
    version = await svc.store.save_version(project_id, files, message=message, commit=commit)
    return {"number": version.number, "message": version.message, "commit": version.commit}


@router.get("/api/projects/{project_id}/events")
async def project_events(project_id: str, request: Request) -> StreamingResponse:
    """Live: every event of this project's runs from now on, for everyone viewing it."""
    svc = services(request)
    await svc.store.get_project(project_id)

    queue = svc.supervisor.listen(project_id)

    async def frames() -> AsyncIterator[bytes]:
        try:
            yield encode_sse_comment("subscribed")
            seq = 0
            while True:
                event = await queue.get()
                seq += 1
                yield encode_sse(seq, event)
        finally:
            svc.supervisor.unlisten(project_id, queue)

    return StreamingResponse(frames(), media_type="text/event-stream", headers=SSE_HEADERS)
