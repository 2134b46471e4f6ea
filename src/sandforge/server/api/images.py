"""The images a prompt came with, stored with its run and shown in the conversation."""

from __future__ import annotations

import base64
from typing import Annotated

from fastapi import APIRouter, Path, Response

from ...errors import NotFound
from ...runs.request import MAX_IMAGES
from ..deps import StoreDep
from ..openapi import errors, operation_id

router = APIRouter(tags=["runs"], generate_unique_id_function=operation_id)


class ImageNotFound(NotFound):
    code = "image_not_found"


@router.get(
    "/api/runs/{run_id}/images/{index}",
    response_class=Response,
    responses={200: {"content": {"image/*": {}}}, **errors(400, 404)},
)
async def run_image(
    run_id: str, index: Annotated[int, Path(ge=0, lt=MAX_IMAGES)], store: StoreDep
) -> Response:
    """Image `index` (from 0) of the run's prompt."""
    images = (await store.get_run(run_id)).images
    if index >= len(images):
        raise ImageNotFound(f"Run {run_id}'s prompt has {len(images)} image(s).")
    image = images[index]
    return Response(
        base64.b64decode(str(image["data"])),
        media_type=str(image["mediaType"]),
        # The bytes are the user's; never let a browser sniff them into something else.
        headers={"x-content-type-options": "nosniff", "cache-control": "private, max-age=3600"},
    )
