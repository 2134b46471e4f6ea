"""Replicas: who is alive and what each runs; telling one to drain.

Alone (no SANDFORGE_REDIS_URL), the server is the one replica listed, from memory.
"""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Request

from ...errors import NotFound
from ...runs.replica import Replica
from ...store.replicas import ReplicaRecord
from ..deps import ProjectsDep, ReplicaDep, services
from ..openapi import errors, operation_id
from ..responses import ReplicaInfo, Replicas
from ..services import Services

router = APIRouter(tags=["replicas"], generate_unique_id_function=operation_id)


class ReplicaNotFound(NotFound):
    code = "replica_not_found"


def _replica_json(record: ReplicaRecord, runs: list[str], own_id: str) -> dict[str, Any]:
    return {
        "id": record.id,
        "kind": "replica",
        "address": record.address,
        "startedAt": record.started_at,
        "heartbeatAt": record.heartbeat_at,
        "draining": record.draining,
        "capacity": record.capacity,
        "running": len(runs),
        "runs": runs,
        "sandboxes": record.sandboxes,
        "self": record.id == own_id,
    }


async def _alone(svc: Services) -> dict[str, Any]:
    runs = [r.id for r in svc.supervisor.runs.values() if not r.done]
    record = ReplicaRecord(
        id=svc.replica_id,
        address=f"http://{svc.settings.host}:{svc.settings.port}",
        started_at=svc.started_at,
        heartbeat_at=time.time(),
        draining=svc.projects.draining,
        capacity=svc.settings.max_concurrent_runs,
        running=len(runs),
        sandboxes=await svc.local_sandbox_ids(),
    )
    return _replica_json(record, runs, record.id)


async def _listing(replica: Replica) -> dict[str, Any]:
    runs = await replica.registry.running_runs_by_replica()
    return {
        "replicas": [
            _replica_json(peer, runs.get(peer.id, []), replica.id)
            for peer in await replica.registry.live_replicas()
        ],
        "queued": await replica.registry.queued(),
    }


@router.get("/api/replicas", responses={200: {"model": Replicas}, **errors()})
async def list_replicas(request: Request, replica: ReplicaDep) -> dict[str, Any]:
    """The live replicas (heartbeat within SANDFORGE_REPLICA_DEAD_AFTER_S) and their runs."""
    if replica is None:
        return {"replicas": [await _alone(services(request))], "queued": 0}
    return await _listing(replica)


@router.post(
    "/api/replicas/{replica_id}/drain",
    responses={200: {"model": ReplicaInfo}, **errors(404)},
)
async def drain_replica(
    replica_id: str, request: Request, projects: ProjectsDep, replica: ReplicaDep
) -> dict[str, Any]:
    """Tell a replica (through any replica) to take no new runs and finish those it has:
    before stopping it for an upgrade. It drains until it restarts."""
    if replica is None:
        svc = services(request)
        if replica_id != svc.replica_id:
            raise ReplicaNotFound(f"No replica {replica_id!r}; GET /api/replicas lists them.")
        await projects.drain()
        return await _alone(svc)
    if replica_id == replica.id:
        await projects.drain()
    elif not await replica.registry.set_draining(replica_id):
        raise ReplicaNotFound(f"No replica {replica_id!r}; GET /api/replicas lists them.")
    listing = await _listing(replica)
    for found in listing["replicas"]:
        if found["id"] == replica_id:
            return {**found, "draining": True}
    raise ReplicaNotFound(f"Replica {replica_id!r} is not alive; GET /api/replicas lists them.")
