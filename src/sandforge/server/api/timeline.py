"""A project's version timeline, and the user's own edits to its files (each a version)."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request

from ...projects.timeline import TimelineEntry, timeline
from ...sandbox.base import normalize_relative
from ..bodies import FileEdit
from ..body import read_json_model
from ..deps import ProjectsDep, SettingsDep, StoreDep
from ..openapi import errors, json_body, operation_id
from ..responses import Saved, Timeline

router = APIRouter(tags=["projects"], generate_unique_id_function=operation_id)


def _entry_json(entry: TimelineEntry, screenshot: str | None) -> dict[str, Any]:
    version = entry.version
    return {
        "number": version.number,
        "kind": version.kind,
        "message": version.message,
        "prompt": entry.prompt,
        "runId": version.run_id,
        "screenshot": screenshot,
        "createdAt": version.created_at,
        "files": version.files,
        "changes": [
            {"path": c.path, "status": c.status, "added": c.added, "removed": c.removed}
            for c in entry.changes
        ],
    }


@router.get(
    "/api/projects/{project_id}/timeline", responses={200: {"model": Timeline}, **errors(404)}
)
async def project_timeline(
    project_id: str, store: StoreDep, settings: SettingsDep
) -> dict[str, Any]:
    """Every version, oldest first: what made it, its prompt, its screenshot, what it changed."""
    await store.get_project(project_id)
    entries = await timeline(store, project_id, await store.list_runs(project_id))
    shots = settings.data_dir / "screenshots"

    def screenshot(run_id: str | None) -> str | None:
        exists = run_id is not None and (shots / f"{run_id}.png").is_file()
        return f"/api/runs/{run_id}/screenshot" if exists else None

    found = await asyncio.to_thread(lambda: [screenshot(e.version.run_id) for e in entries])
    return {"versions": [_entry_json(e, shot) for e, shot in zip(entries, found, strict=True)]}


@router.put(
    "/api/projects/{project_id}/files/{path:path}",
    openapi_extra=json_body(FileEdit),
    responses={200: {"model": Saved}, **errors(400, 404, 409, 413, 415, 507)},
)
async def edit_project_file(
    project_id: str, path: str, request: Request, projects: ProjectsDep
) -> dict[str, Any]:
    """Save the user's own change to a file: written to the sandbox (its dev server reloads)
    or the store, as a new version marked as a manual edit; the next run is told of it."""
    body = await read_json_model(request, FileEdit)
    version = await projects.edit_file(
        project_id, normalize_relative(path), body.content.encode("utf-8")
    )
    return {
        "number": version.number,
        "kind": version.kind,
        "message": version.message,
        "commit": version.commit,
    }
