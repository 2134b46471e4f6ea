"""The cost ledger: per run, the tokens, the model cost and the sandbox time; with totals
per project and over time, for the usage API and the budgets."""

from __future__ import annotations

from dataclasses import dataclass, fields

from sqlalchemy import ColumnElement, func, literal_column, select
from sqlalchemy.ext.asyncio import AsyncEngine

from .db import Sessions
from .models import RunUsageRow, now
from .repo import _insert


@dataclass(frozen=True)
class RunUsageRecord:
    run_id: str
    project_id: str
    model: str | None
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    requests: int = 0
    cost_usd: float | None = None
    """None when the model has no known price."""
    sandbox_wall_s: float = 0.0
    sandbox_cpu_s: float = 0.0
    sandbox_memory_gb_s: float = 0.0
    created_at: float = 0.0


@dataclass(frozen=True)
class UsageTotals:
    runs: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    cost_usd: float = 0.0
    """The priced runs' cost; `unpriced_runs` had none."""
    unpriced_runs: int = 0
    sandbox_wall_s: float = 0.0
    sandbox_cpu_s: float = 0.0
    sandbox_memory_gb_s: float = 0.0


_SUMMED = (
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "cost_usd",
    "sandbox_wall_s",
    "sandbox_cpu_s",
    "sandbox_memory_gb_s",
)


def _record(row: RunUsageRow) -> RunUsageRecord:
    return RunUsageRecord(**{f.name: getattr(row, f.name) for f in fields(RunUsageRecord)})


class UsageLedger:
    def __init__(self, engine: AsyncEngine) -> None:
        self._session = Sessions(engine)

    async def record(self, usage: RunUsageRecord) -> None:
        """Record a run's usage once (a write retried after a lost reply is a no-op)."""
        values = {f.name: getattr(usage, f.name) for f in fields(RunUsageRecord)}
        values["created_at"] = usage.created_at or now()
        async with self._session.begin() as session:
            await session.execute(
                _insert(session, RunUsageRow)
                .values(**values)
                .on_conflict_do_nothing(index_elements=["run_id"])
            )

    async def runs(self, project_id: str) -> list[RunUsageRecord]:
        async with self._session() as session:
            rows = await session.scalars(
                select(RunUsageRow)
                .where(RunUsageRow.project_id == project_id)
                .order_by(RunUsageRow.created_at)
            )
            return [_record(r) for r in rows]

    async def totals(
        self, *, project_id: str | None = None, since: float | None = None
    ) -> UsageTotals:
        totals = await self._totals(project_id, since, by_project=False)
        return totals.get("", UsageTotals())

    async def by_project(self, since: float | None = None) -> dict[str, UsageTotals]:
        return await self._totals(None, since, by_project=True)

    async def _totals(
        self, project_id: str | None, since: float | None, *, by_project: bool
    ) -> dict[str, UsageTotals]:
        sums = [func.coalesce(func.sum(getattr(RunUsageRow, name)), 0) for name in _SUMMED]
        unpriced = func.count().filter(RunUsageRow.cost_usd.is_(None))
        key = RunUsageRow.project_id if by_project else literal_column("''")
        query = select(key, func.count(), unpriced, *sums)
        conditions: list[ColumnElement[bool]] = []
        if project_id is not None:
            conditions.append(RunUsageRow.project_id == project_id)
        if since is not None:
            conditions.append(RunUsageRow.created_at >= since)
        query = query.where(*conditions)
        if by_project:
            query = query.group_by(RunUsageRow.project_id)
        async with self._session() as session:
            rows = (await session.execute(query)).all()
        return {
            group or "": _totals_of(count, unpriced_count, summed)
            for group, count, unpriced_count, *summed in rows
            if count
        }


def _totals_of(count: int, unpriced: int, summed: list[float]) -> UsageTotals:
    v = dict(zip(_SUMMED, summed, strict=True))
    return UsageTotals(
        runs=count,
        unpriced_runs=unpriced,
        input_tokens=int(v["input_tokens"]),
        output_tokens=int(v["output_tokens"]),
        cache_read_tokens=int(v["cache_read_tokens"]),
        cache_write_tokens=int(v["cache_write_tokens"]),
        cost_usd=float(v["cost_usd"]),
        sandbox_wall_s=float(v["sandbox_wall_s"]),
        sandbox_cpu_s=float(v["sandbox_cpu_s"]),
        sandbox_memory_gb_s=float(v["sandbox_memory_gb_s"]),
    )
