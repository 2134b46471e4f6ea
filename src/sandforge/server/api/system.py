"""The server itself: health, for probes, load balancers and the CLI."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from ...agent.models import configured_model_name
from ...store.db import reachable
from ..deps import services
from ..openapi import errors, operation_id
from ..responses import Health

router = APIRouter(tags=["system"], generate_unique_id_function=operation_id)


@router.get("/api/health", responses={200: {"model": Health}, **errors()})
async def health(request: Request) -> dict[str, Any]:
    """Whether the database (and Redis) answer, the sandbox provider, and this replica's
    load. Always 200 while the process serves: `ok` says whether it can do its work."""
    svc = services(request)
    database_ok = await reachable(svc.store.engine)
    redis_ok = await svc.replica.bus.ping() if svc.replica is not None else False
    draining = svc.projects.draining
    return {
        "ok": database_ok and (svc.replica is None or redis_ok),
        "isolated": svc.fleet.isolated,
        "model": configured_model_name(svc.settings),
        "database": {"ok": database_ok, "dialect": svc.store.engine.dialect.name},
        "redis": {"configured": svc.replica is not None, "ok": redis_ok},
        "sandboxProvider": {"name": svc.settings.sandbox_provider, "isolated": svc.fleet.isolated},
        "replica": {
            "id": svc.replica_id,
            "running": svc.supervisor.running,
            "capacity": svc.settings.max_concurrent_runs,
            "draining": draining,
        },
    }
