"""The cost ledger: per project (each run) and over time (each project), with the budgets."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel

from ...config import Settings
from ...store.usage import RunUsageRecord, UsageLedger, UsageTotals
from ..deps import SettingsDep, StoreDep, services
from ..openapi import errors, operation_id

router = APIRouter(tags=["usage"], generate_unique_id_function=operation_id)


class Totals(BaseModel):
    runs: int
    inputTokens: int
    outputTokens: int
    cacheReadTokens: int
    cacheWriteTokens: int
    costUsd: float
    """The priced runs' model cost (genai-prices)."""
    unpricedRuns: int
    """Runs whose model has no known price; they are not in `costUsd`."""
    sandboxWallSeconds: float
    sandboxCpuSeconds: float
    sandboxMemoryGbSeconds: float


class RunUsage(BaseModel):
    runId: str
    model: str | None
    inputTokens: int
    outputTokens: int
    cacheReadTokens: int
    cacheWriteTokens: int
    modelRequests: int
    costUsd: float | None
    sandboxWallSeconds: float
    sandboxCpuSeconds: float
    sandboxMemoryGbSeconds: float
    createdAt: float


class Budgets(BaseModel):
    """The configured budgets in USD (null: none)."""

    runUsd: float | None
    projectUsd: float | None
    dayUsd: float | None


class ProjectUsage(BaseModel):
    projectId: str
    total: Totals
    runs: list[RunUsage]
    budgets: Budgets


class ProjectTotals(Totals):
    projectId: str


class Usage(BaseModel):
    since: float | None
    total: Totals
    projects: list[ProjectTotals]
    budgets: Budgets


def totals_json(totals: UsageTotals) -> dict[str, Any]:
    return {
        "runs": totals.runs,
        "inputTokens": totals.input_tokens,
        "outputTokens": totals.output_tokens,
        "cacheReadTokens": totals.cache_read_tokens,
        "cacheWriteTokens": totals.cache_write_tokens,
        "costUsd": round(totals.cost_usd, 8),
        "unpricedRuns": totals.unpriced_runs,
        "sandboxWallSeconds": round(totals.sandbox_wall_s, 3),
        "sandboxCpuSeconds": round(totals.sandbox_cpu_s, 3),
        "sandboxMemoryGbSeconds": round(totals.sandbox_memory_gb_s, 3),
    }


def run_usage_json(usage: RunUsageRecord) -> dict[str, Any]:
    return {
        "runId": usage.run_id,
        "model": usage.model,
        "inputTokens": usage.input_tokens,
        "outputTokens": usage.output_tokens,
        "cacheReadTokens": usage.cache_read_tokens,
        "cacheWriteTokens": usage.cache_write_tokens,
        "modelRequests": usage.requests,
        "costUsd": usage.cost_usd,
        "sandboxWallSeconds": usage.sandbox_wall_s,
        "sandboxCpuSeconds": usage.sandbox_cpu_s,
        "sandboxMemoryGbSeconds": usage.sandbox_memory_gb_s,
        "createdAt": usage.created_at,
    }


def budgets_json(settings: Settings) -> dict[str, Any]:
    return {
        "runUsd": settings.budget_run_usd,
        "projectUsd": settings.budget_project_usd,
        "dayUsd": settings.budget_day_usd,
    }


def _ledger(request: Request) -> UsageLedger:
    return services(request).supervisor.ledger


@router.get(
    "/api/projects/{project_id}/usage", responses={200: {"model": ProjectUsage}, **errors(404)}
)
async def project_usage(
    project_id: str, request: Request, store: StoreDep, settings: SettingsDep
) -> dict[str, Any]:
    """What the project's runs used: each run, and the total."""
    await store.get_project(project_id)
    ledger = _ledger(request)
    return {
        "projectId": project_id,
        "total": totals_json(await ledger.totals(project_id=project_id)),
        "runs": [run_usage_json(u) for u in await ledger.runs(project_id)],
        "budgets": budgets_json(settings),
    }


@router.get("/api/usage", responses={200: {"model": Usage}, **errors(400)})
async def usage(
    request: Request,
    settings: SettingsDep,
    since: Annotated[
        float | datetime | None,
        Query(description="Only runs from then on: Unix seconds or an ISO 8601 time."),
    ] = None,
) -> dict[str, Any]:
    """What all runs used (since a time), per project and in total."""
    ledger = _ledger(request)
    start = since.timestamp() if isinstance(since, datetime) else since
    projects = await ledger.by_project(start)
    return {
        "since": start,
        "total": totals_json(await ledger.totals(since=start)),
        "projects": [
            {"projectId": project_id, **totals_json(totals)}
            for project_id, totals in sorted(
                projects.items(), key=lambda item: item[1].cost_usd, reverse=True
            )
        ],
        "budgets": budgets_json(settings),
    }
