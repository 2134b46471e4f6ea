"""Shipping a project out: its files as a zip, its production build published, its history
pushed to GitHub."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel

from ...config import Settings
from ...projects.export import zip_version
from ...projects.github import GitHubPush, GitHubPusher
from ...projects.publish import Publisher
from ...projects.service import Projects
from ...store.published import PublishedRecord, PublishedSites
from ..body import read_json_model
from ..deps import ProjectsDep, SettingsDep, StoreDep
from ..openapi import errors, json_body, operation_id
from .runs import MAX_SEQ

router = APIRouter(tags=["shipping"], generate_unique_id_function=operation_id)


@router.get(
    "/api/projects/{project_id}/export.zip",
    response_class=Response,
    responses={200: {"content": {"application/zip": {}}}, **errors(400, 404)},
)
async def export_project(
    project_id: str,
    store: StoreDep,
    version: Annotated[int | None, Query(ge=1, le=MAX_SEQ)] = None,
) -> Response:
    """The project's files as a zip: its latest version, or `?version=N`."""
    name, content = await zip_version(store, project_id, version)
    return Response(
        content,
        media_type="application/zip",
        headers={"content-disposition": f'attachment; filename="{name}"'},
    )


class Published(BaseModel):
    projectId: str
    slug: str
    url: str
    """Public: anyone with the address sees the app, no token needed."""
    version: int
    """The project version it was built from."""
    publishedAt: float
    files: int | None = None
    """How many files the build has (on publishing)."""


def published_json(site: PublishedRecord, settings: Settings) -> dict[str, Any]:
    return {
        "projectId": site.project_id,
        "slug": site.slug,
        "url": settings.published_url(site.slug),
        "version": site.version,
        "publishedAt": site.published_at,
        "files": site.files or None,
    }


def _publisher(projects: Projects) -> Publisher:
    return Publisher(projects, PublishedSites(projects.store))


@router.post(
    "/api/projects/{project_id}/publish",
    responses={200: {"model": Published}, **errors(404, 409, 429, 507)},
)
async def publish_project(
    project_id: str, projects: ProjectsDep, settings: SettingsDep
) -> dict[str, Any]:
    """Build the latest version for production and serve it publicly at the project's
    stable URL (`http://{slug}.apps.{domain}:{port}/`); publishing again updates it."""
    return published_json(await _publisher(projects).publish(project_id), settings)


class PublishStatus(BaseModel):
    projectId: str
    site: Published | None
    """Null when the project is not published."""


@router.get(
    "/api/projects/{project_id}/publish",
    responses={200: {"model": PublishStatus}, **errors(404)},
)
async def get_published(
    project_id: str, projects: ProjectsDep, settings: SettingsDep
) -> dict[str, Any]:
    """Whether and where the project is published."""
    site = await _publisher(projects).published(project_id)
    return {
        "projectId": project_id,
        "site": published_json(site, settings) if site is not None else None,
    }


@router.delete(
    "/api/projects/{project_id}/publish",
    status_code=204,
    response_class=Response,
    responses=errors(404),
)
async def unpublish_project(project_id: str, projects: ProjectsDep) -> Response:
    """The published URL answers 404 from now on."""
    await _publisher(projects).unpublish(project_id)
    return Response(status_code=204)


class GitHubPushed(BaseModel):
    repo: str
    """`owner/name` on GitHub."""
    url: str
    created: bool
    """Whether sandforge created the repository for this push."""
    pushedVersions: list[int]
    """The versions this push added (one commit each); empty when it was up to date."""
    commit: str


@router.post(
    "/api/projects/{project_id}/github",
    openapi_extra=json_body(GitHubPush),
    responses={200: {"model": GitHubPushed}, **errors(400, 404, 409, 413, 415, 502)},
)
async def push_to_github(
    project_id: str, request: Request, store: StoreDep, settings: SettingsDep
) -> dict[str, Any]:
    """Push the project's history to a GitHub repository (created if it does not exist),
    one commit per version; pushing again adds only the newer versions."""
    body = await read_json_model(request, GitHubPush)
    result = await GitHubPusher(settings, store).push(project_id, body)
    return {
        "repo": result.repo,
        "url": result.url,
        "created": result.created,
        "pushedVersions": result.pushed_versions,
        "commit": result.commit,
    }
