"""The server itself: health, for probes and the CLI."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from ...agent.models import configured_model_name
from ..deps import services
from ..openapi import Health, errors, operation_id

router = APIRouter(tags=["system"], generate_unique_id_function=operation_id)


@router.get("/api/health", responses={200: {"model": Health}, **errors()})
async def health(request: Request) -> dict[str, Any]:
    svc = services(request)
    return {
        "ok": True,
        "isolated": svc.fleet.isolated,
        "model": configured_model_name(svc.settings),
    }
