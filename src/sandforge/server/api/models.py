"""The models a user may choose for a project (the configured one and SANDFORGE_ALLOWED_MODELS)."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter

from ...agent.models import model_options
from ..deps import SettingsDep
from ..openapi import errors, operation_id
from ..responses import Models

router = APIRouter(tags=["system"], generate_unique_id_function=operation_id)


@router.get("/api/models", responses={200: {"model": Models}, **errors()})
async def list_models(settings: SettingsDep) -> dict[str, Any]:
    """The configured model first, then each allowed one; `problem` says why one cannot run
    here (and the fix). Choose one per project with PATCH /api/projects/{id} `{"model"}`."""
    # Building a model imports its provider's SDK the first time: off the event loop.
    options, patterns = await asyncio.to_thread(model_options, settings)
    return {
        "models": [
            {
                "name": o.name,
                "default": o.default,
                "readsImages": o.reads_images,
                "problem": o.problem,
            }
            for o in options
        ],
        "patterns": patterns,
    }
