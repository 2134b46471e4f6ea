"""Shipping a project out: its files as a zip."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from ...projects.export import zip_version
from ..deps import StoreDep
from ..openapi import errors, operation_id
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
