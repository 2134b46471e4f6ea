"""The store's side of several replicas: their registry, and the runs queue.

Only with Postgres (replicas share it): the queue is the runs table itself. A queued run
is `running` with no replica; a replica with a free slot takes the oldest with
`SELECT ... FOR UPDATE SKIP LOCKED`, so two replicas never take the same one and none
waits on another. Liveness is the database's clock against each replica's last
heartbeat, so replicas whose clocks differ still agree on who is dead.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Float, cast, func, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from .db import Sessions
from .models import EventRow, ReplicaRow, RunRow, now


@dataclass(frozen=True)
class ReplicaRecord:
    id: str
    address: str
    started_at: float
    heartbeat_at: float
    draining: bool
    capacity: int
    running: int
    sandboxes: list[str]


@dataclass(frozen=True)
class Beat:
    """What a replica says about itself at each heartbeat."""

    id: str
    address: str
    started_at: float
    capacity: int
    running: int
    sandboxes: list[str]


@dataclass(frozen=True)
class ClaimedRun:
    id: str
    project_id: str
    request: dict[str, Any]


@dataclass(frozen=True)
class EndedRun:
    """A run the store just ended on behalf of a replica that could not: its last event."""

    id: str
    project_id: str
    seq: int
    body: str
    replica_id: str | None


class ReplicasNeedPostgres(ValueError):
    pass


def _db_now() -> Any:
    return cast(func.extract("epoch", func.clock_timestamp()), Float)


def _replica(row: ReplicaRow) -> ReplicaRecord:
    return ReplicaRecord(
        id=row.id,
        address=row.address,
        started_at=row.started_at,
        heartbeat_at=row.heartbeat_at,
        draining=row.draining,
        capacity=row.capacity,
        running=row.running,
        sandboxes=list(row.sandboxes),
    )


class ReplicaStore:
    def __init__(self, engine: AsyncEngine, dead_after_s: float) -> None:
        if engine.dialect.name != "postgresql":
            raise ReplicasNeedPostgres(
                "Replicas (SANDFORGE_REDIS_URL) share a Postgres database: set "
                "SANDFORGE_DATABASE_URL=postgresql://..."
            )
        self._session = Sessions(engine)
        self.dead_after_s = dead_after_s

    def _live_ids(self) -> Any:
        return select(ReplicaRow.id).where(ReplicaRow.heartbeat_at > _db_now() - self.dead_after_s)

    # -- the registry ----------------------------------------------------------------------------

    async def heartbeat(self, beat: Beat) -> bool:
        """Say this replica is alive (registering it the first time); True if it is to drain."""
        values = {
            "address": beat.address,
            "heartbeat_at": _db_now(),
            "capacity": beat.capacity,
            "running": beat.running,
            "sandboxes": beat.sandboxes,
        }
        async with self._session.begin() as session:
            draining = await session.scalar(
                pg_insert(ReplicaRow)
                .values(id=beat.id, started_at=beat.started_at, draining=False, **values)
                .on_conflict_do_update(index_elements=["id"], set_=values)
                .returning(ReplicaRow.draining)
            )
        return bool(draining)

    async def set_draining(self, replica_id: str) -> bool:
        """Tell a replica to drain; False if there is no such replica."""
        async with self._session.begin() as session:
            result = await session.execute(
                update(ReplicaRow).where(ReplicaRow.id == replica_id).values(draining=True)
            )
            return bool(result.rowcount)  # type: ignore[attr-defined]

    async def leave(self, replica_id: str) -> None:
        """A replica that stops says so at once, instead of being found dead later."""
        async with self._session.begin() as session:
            await session.execute(
                update(ReplicaRow).where(ReplicaRow.id == replica_id).values(heartbeat_at=0.0)
            )

    async def live_replicas(self) -> list[ReplicaRecord]:
        async with self._session() as session:
            rows = await session.scalars(
                select(ReplicaRow)
                .where(ReplicaRow.id.in_(self._live_ids()))
                .order_by(ReplicaRow.started_at)
            )
            return [_replica(row) for row in rows]

    async def running_runs_by_replica(self) -> dict[str, list[str]]:
        async with self._session() as session:
            rows = await session.execute(
                select(RunRow.replica_id, RunRow.id)
                .where(RunRow.state == "running", RunRow.replica_id.is_not(None))
                .order_by(RunRow.created_at)
            )
            found: dict[str, list[str]] = {}
            for replica_id, run_id in rows:
                found.setdefault(str(replica_id), []).append(run_id)
            return found

    async def forget_replicas(self, silent_for_s: float) -> None:
        """Drop replicas that have been silent long enough that nobody asks after them."""
        async with self._session.begin() as session:
            await session.execute(
                ReplicaRow.__table__.delete().where(  # type: ignore[attr-defined]
                    ReplicaRow.heartbeat_at < _db_now() - silent_for_s
                )
            )

    # -- the queue -------------------------------------------------------------------------------

    async def enqueue(
        self, run_id: str, project_id: str, request: dict[str, Any], affinity: str | None
    ) -> str | None:
        """Queue a run of the project, unless one is running or queued: then that one's id.

        The project's advisory lock (held to the end of the transaction) makes the check
        and the insert one step across replicas."""
        async with self._session.begin() as session:
            await session.execute(
                text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": project_id}
            )
            busy = await session.scalar(
                select(RunRow.id).where(RunRow.project_id == project_id, RunRow.state == "running")
            )
            if busy is not None:
                return str(busy)
            session.add(
                RunRow(
                    id=run_id,
                    project_id=project_id,
                    state="running",
                    request=request,
                    tokens_used=0,
                    created_at=now(),
                    affinity=affinity,
                )
            )
        return None

    async def claim(self, replica_id: str) -> ClaimedRun | None:
        """Take the oldest queued run this replica may run; None if there is none."""
        async with self._session.begin() as session:
            row = await session.scalar(
                select(RunRow)
                .where(
                    RunRow.state == "running",
                    RunRow.replica_id.is_(None),
                    RunRow.affinity.is_(None)
                    | (RunRow.affinity == replica_id)
                    | RunRow.affinity.not_in(self._live_ids()),
                )
                .order_by(RunRow.created_at)
                .limit(1)
                .with_for_update(skip_locked=True)
            )
            if row is None:
                return None
            row.replica_id = replica_id
            return ClaimedRun(row.id, row.project_id, dict(row.request))

    async def queued(self) -> int:
        async with self._session() as session:
            count = await session.scalar(
                select(func.count())
                .select_from(RunRow)
                .where(RunRow.state == "running", RunRow.replica_id.is_(None))
            )
            return int(count or 0)

    async def sandbox_runner(self, project_id: str, sandbox_id: str) -> str | None:
        """The replica that ran the project's last run in this sandbox (it made or holds
        it), as the store says as soon as that run ends."""
        async with self._session() as session:
            found = await session.scalar(
                select(RunRow.replica_id)
                .where(
                    RunRow.project_id == project_id,
                    RunRow.sandbox_id == sandbox_id,
                    RunRow.replica_id.is_not(None),
                )
                .order_by(RunRow.created_at.desc())
                .limit(1)
            )
            return str(found) if found is not None else None

    async def ended(self, run_ids: list[str]) -> list[str]:
        """Which of these runs the store no longer has running."""
        if not run_ids:
            return []
        async with self._session() as session:
            rows = await session.scalars(
                select(RunRow.id).where(RunRow.id.in_(run_ids), RunRow.state != "running")
            )
            return list(rows)

    # -- ending runs no live replica will end ----------------------------------------------------

    async def end_orphans(self, body_for: Callable[[str], str]) -> list[EndedRun]:
        """Runs taken by replicas now dead: each gets `body_for(replica)` as its last event
        and ends interrupted. Locked rows are skipped, so two replicas never end one run
        twice."""
        async with self._session.begin() as session:
            rows = await session.scalars(
                select(RunRow)
                .where(
                    RunRow.state == "running",
                    RunRow.replica_id.is_not(None),
                    RunRow.replica_id.not_in(self._live_ids()),
                )
                .with_for_update(skip_locked=True)
            )
            return [
                await _end(session, row, "interrupted", body_for(str(row.replica_id)))
                for row in rows.all()
            ]

    async def cancel_queued(self, run_id: str, body: str) -> EndedRun | None:
        """Cancel a run still waiting in the queue; None if a replica has it (or it ended)."""
        async with self._session.begin() as session:
            row = await session.scalar(
                select(RunRow)
                .where(RunRow.id == run_id, RunRow.state == "running", RunRow.replica_id.is_(None))
                .with_for_update(skip_locked=True)
            )
            return None if row is None else await _end(session, row, "cancelled", body)

    async def end_taken(
        self, run_id: str, replica_id: str, state: str, body: str
    ) -> EndedRun | None:
        """End a run this replica took but could not start."""
        async with self._session.begin() as session:
            row = await session.scalar(
                select(RunRow)
                .where(
                    RunRow.id == run_id,
                    RunRow.state == "running",
                    RunRow.replica_id == replica_id,
                )
                .with_for_update()
            )
            return None if row is None else await _end(session, row, state, body)


async def _end(session: AsyncSession, row: RunRow, state: str, body: str) -> EndedRun:
    last = await session.scalar(select(func.max(EventRow.seq)).where(EventRow.run_id == row.id))
    seq = int(last or 0) + 1
    session.add(EventRow(run_id=row.id, seq=seq, body=body, created_at=now()))
    row.state, row.finished_at = state, now()
    return EndedRun(row.id, row.project_id, seq, body, row.replica_id)
