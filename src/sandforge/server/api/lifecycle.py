"""A project's sandbox settings and app environment, and deleting long-stopped sandboxes."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel

from ...projects.service import Projects
from ...projects.serving import SandboxResources
from ...projects.settings import SettingsUpdate
from ..body import read_json_model
from ..deps import ProjectsDep, SettingsDep
from ..openapi import errors, json_body, operation_id

router = APIRouter(tags=["lifecycle"], generate_unique_id_function=operation_id)


class SandboxSettings(SandboxResources):
    """The project's sandbox settings as stored (the request's `SandboxResources`)."""


class ProjectSettings(BaseModel):
    projectId: str
    sandbox: SandboxSettings
    """Unset fields have sandforge's defaults."""
    env: list[str]
    """The names of the app's environment variables; values are never shown back."""


class Collected(BaseModel):
    deleted: list[str]
    """The sandboxes deleted; their projects rebuild one from the stored files on demand."""


async def _settings_json(projects: Projects, project_id: str) -> dict[str, Any]:
    return {
        "projectId": project_id,
        "sandbox": (await projects.config.resources(project_id)).model_dump(exclude_none=True),
        "env": await projects.config.env_names(project_id),
    }


@router.get(
    "/api/projects/{project_id}/settings",
    responses={200: {"model": ProjectSettings}, **errors(404)},
)
async def get_project_settings(project_id: str, projects: ProjectsDep) -> dict[str, Any]:
    await projects.store.get_project(project_id)
    return await _settings_json(projects, project_id)


@router.put(
    "/api/projects/{project_id}/settings",
    openapi_extra=json_body(SettingsUpdate),
    responses={200: {"model": ProjectSettings}, **errors(400, 404, 409, 413, 415, 429, 507)},
)
async def update_project_settings(
    project_id: str, request: Request, projects: ProjectsDep
) -> dict[str, Any]:
    """Change the sandbox's resources and egress (it is rebuilt from the stored files with
    them) or the app's environment variables (the dev server restarts with them)."""
    update = await read_json_model(request, SettingsUpdate)
    await projects.update_settings(project_id, update)
    return await _settings_json(projects, project_id)


@router.post("/api/gc", responses={200: {"model": Collected}, **errors(400)})
async def collect_sandboxes(
    projects: ProjectsDep,
    settings: SettingsDep,
    stopped_for_days: Annotated[
        float | None,
        Query(
            alias="stoppedForDays",
            ge=0,
            le=36500,
            description="Delete sandboxes stopped this long; default SANDFORGE_IDLE_DELETE_DAYS.",
        ),
    ] = None,
) -> dict[str, Any]:
    """Delete the projects' sandboxes stopped for a while now (their files stay stored)."""
    days = settings.idle_delete_days if stopped_for_days is None else stopped_for_days
    return {"deleted": await projects.upkeep.delete_stopped_sandboxes(days * 86400)}
