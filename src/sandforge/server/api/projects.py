"""Projects: sessions, conversation, files, versions (list, diff, restore), preview and viewers."""

from __future__ import annotations

import difflib
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.responses import StreamingResponse

from ...config import Settings
from ...events import Event, encode_sse_comment
from ...projects.serving import PreviewStatus, find_service, preview_status, process_name
from ...store.records import ProjectRecord, ShareLinkRecord
from ...templates import get_template
from ..bodies import ProjectUpdate, ShareRequest
from ..body import read_json_model
from ..deps import ProjectsDep, SettingsDep, StoppingDep, StoreDep, SupervisorDep
from ..openapi import PROJECT_LINKS, errors, event_stream, first_file_link, json_body, operation_id
from ..responses import (
    Diff,
    Files,
    Preview,
    Project,
    Projects,
    ProjectWithConversation,
    Restored,
    Session,
    Share,
    Shares,
    Versions,
)
from ..sse import sse_stream
from ..views import (
    conversation_json,
    preview_json,
    project_json,
    session_json,
    version_json,
)
from .runs import MAX_SEQ

router = APIRouter(tags=["projects"], generate_unique_id_function=operation_id)

VersionNumber = Annotated[int, Path(ge=1, le=MAX_SEQ)]


@router.get("/api/projects", responses={200: {"model": Projects}, **errors()})
async def list_projects(store: StoreDep, settings: SettingsDep) -> dict[str, Any]:
    return {"projects": [project_json(p, settings) for p in await store.list_projects()]}


@router.get(
    "/api/projects/{project_id}",
    responses={
        200: {"model": ProjectWithConversation, "links": PROJECT_LINKS},
        **errors(404),
    },
)
async def get_project(project_id: str, store: StoreDep, settings: SettingsDep) -> dict[str, Any]:
    project = await store.get_project(project_id)
    messages = conversation_json(await store.history(project_id))
    return {**project_json(project, settings), "messages": messages}


@router.patch(
    "/api/projects/{project_id}",
    openapi_extra=json_body(ProjectUpdate),
    responses={200: {"model": Project}, **errors(400, 404, 413, 415)},
)
async def update_project(
    project_id: str, request: Request, projects: ProjectsDep, settings: SettingsDep
) -> dict[str, Any]:
    """Rename the project (`name`), or choose the model its runs use (`model`, one of
    GET /api/models; `""` goes back to the server's configured model)."""
    body = await read_json_model(request, ProjectUpdate)
    project = await projects.update(project_id, name=body.name, model=body.model)
    return project_json(project, settings)


@router.delete(
    "/api/projects/{project_id}",
    status_code=204,
    response_class=Response,
    responses=errors(400, 404, 409, 507),
)
async def delete_project(project_id: str, projects: ProjectsDep) -> Response:
    await projects.delete(project_id)
    return Response(status_code=204)


@router.get("/api/sessions/{any_id}", responses={200: {"model": Session}, **errors(400, 404, 409)})
async def get_session(any_id: str, projects: ProjectsDep, settings: SettingsDep) -> dict[str, Any]:
    """Everything the UI needs to reopen a project, from the id of it, its run or its sandbox."""
    return session_json(await projects.session(any_id), any_id, settings)


@router.get(
    "/api/projects/{project_id}/preview",
    responses={200: {"model": Preview}, **errors(400, 404, 409)},
)
async def project_preview(
    project_id: str,
    projects: ProjectsDep,
    store: StoreDep,
    settings: SettingsDep,
    service: str | None = None,
) -> dict[str, Any]:
    """The preview status of the project's main service, or of `service`, with its log tail;
    `stopped` when the sandbox is gone (opening the preview rebuilds it)."""
    project = await store.get_project(project_id)
    template = get_template(project.project_type)
    chosen = find_service(template, service)
    port = chosen.port
    url = settings.preview_url(project.id, port)
    render = await store.last_render(project_id)
    if project.flow == "persistent":
        return preview_json(PreviewStatus("ready"), url, None, render)
    sandbox = await projects.project_sandbox(project)
    if sandbox is None:
        # Gone: opening the preview (or a follow-up) rebuilds it from the stored files.
        return {**preview_json(PreviewStatus("stopped"), url, None, render), "sandboxGone": True}
    status = await preview_status(sandbox, port, process_name(template, chosen))
    return preview_json(status, url, sandbox.id, render)


@router.get(
    "/api/projects/{project_id}/files",
    responses={
        200: {"model": Files, "links": first_file_link("read_project_file", "project_id")},
        **errors(404),
    },
)
async def list_project_files(project_id: str, store: StoreDep) -> dict[str, Any]:
    await store.get_project(project_id)
    sizes = await store.file_sizes(project_id)
    return {"files": [{"path": p, "size": s, "isDir": False} for p, s in sizes.items()]}


@router.get(
    "/api/projects/{project_id}/files/{path:path}",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}}, **errors(404)},
)
async def read_project_file(project_id: str, path: str, store: StoreDep) -> Response:
    content = await store.read_file(project_id, path)
    return Response(content, media_type="text/plain; charset=utf-8")


@router.get(
    "/api/projects/{project_id}/versions", responses={200: {"model": Versions}, **errors(404)}
)
async def list_versions(project_id: str, store: StoreDep) -> dict[str, Any]:
    await store.get_project(project_id)
    return {"versions": [version_json(v) for v in await store.list_versions(project_id)]}


def _text(content: bytes | None) -> list[str]:
    if content is None:
        return []
    return content.decode("utf-8", errors="replace").splitlines(keepends=True)


@router.get("/api/projects/{project_id}/diff", responses={200: {"model": Diff}, **errors(400, 404)})
async def diff_versions(
    project_id: str,
    store: StoreDep,
    from_version: Annotated[int, Query(alias="from", ge=1, le=MAX_SEQ)],
    to_version: Annotated[int, Query(alias="to", ge=1, le=MAX_SEQ)],
) -> dict[str, Any]:
    """Unified diffs per changed file between two versions (`?from=1&to=3`)."""
    old = await store.version_files(project_id, from_version)
    new = await store.version_files(project_id, to_version)
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
    return {"from": from_version, "to": to_version, "files": files}


@router.post(
    "/api/projects/{project_id}/versions/{number}/restore",
    responses={200: {"model": Restored}, **errors(400, 404, 409, 413, 507)},
)
async def restore_version(
    project_id: str, number: VersionNumber, projects: ProjectsDep
) -> dict[str, Any]:
    """Make version `number`'s files current again, as a new version: nothing is lost."""
    version = await projects.restore(project_id, number)
    return {"number": version.number, "message": version.message, "commit": version.commit}


@router.get(
    "/api/projects/{project_id}/events",
    response_class=StreamingResponse,
    responses={
        200: event_stream(
            "Live: every event of the project's runs from now on, numbered from 1 for this "
            "listener. It does not end; close it when done."
        ),
        **errors(404),
    },
)
async def project_events(
    project_id: str, store: StoreDep, supervisor: SupervisorDep, stopping: StoppingDep
) -> StreamingResponse:
    """Live: every event of this project's runs from now on, for everyone viewing it."""
    await store.get_project(project_id)
    queue = supervisor.feeds.listen(project_id)

    async def events() -> AsyncIterator[tuple[int, Event]]:
        try:
            seq = 0
            while True:
                event = await queue.get()
                seq += 1
                yield seq, event
        finally:
            supervisor.feeds.unlisten(project_id, queue)

    return sse_stream(events(), stopping, preamble=encode_sse_comment("subscribed"))


def share_json(link: ShareLinkRecord, project: ProjectRecord, settings: Settings) -> dict[str, Any]:
    url = settings.preview_url(project.id, get_template(project.project_type).port)
    return {
        "id": link.id,
        "kind": "share",
        "url": f"{url}?token={link.token}",
        "createdAt": link.created_at,
        "expiresAt": link.expires_at,
        "revokedAt": link.revoked_at,
        "live": link.live(time.time()),
    }


@router.post(
    "/api/projects/{project_id}/shares",
    status_code=201,
    openapi_extra=json_body(ShareRequest),
    responses={201: {"model": Share}, **errors(400, 404, 413, 415)},
)
async def create_share(
    project_id: str, request: Request, projects: ProjectsDep, settings: SettingsDep
) -> dict[str, Any]:
    """A share link to the project's preview, which can expire and be revoked."""
    body = await read_json_model(request, ShareRequest)
    link = await projects.share(project_id, body.expiresInSeconds)
    return share_json(link, await projects.store.get_project(project_id), settings)


@router.get("/api/projects/{project_id}/shares", responses={200: {"model": Shares}, **errors(404)})
async def list_shares(project_id: str, store: StoreDep, settings: SettingsDep) -> dict[str, Any]:
    project = await store.get_project(project_id)
    links = await store.share_links(project_id)
    return {"shares": [share_json(link, project, settings) for link in links]}


@router.delete(
    "/api/projects/{project_id}/shares/{share_id}",
    responses={200: {"model": Share}, **errors(404)},
)
async def revoke_share(
    project_id: str, share_id: str, projects: ProjectsDep, settings: SettingsDep
) -> dict[str, Any]:
    """The link stops opening the preview at once."""
    link = await projects.revoke_share(project_id, share_id)
    return share_json(link, await projects.store.get_project(project_id), settings)
