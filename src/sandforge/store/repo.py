"""The Store: every read and write of persistent state goes through here.

It hands out plain records, never ORM objects, so callers cannot lazily load
or mutate rows behind its back.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import secrets
from pathlib import Path
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from ..chat import ChatMessage, Role
from ..config import SandboxProviderName
from ..ids import new_id
from .db import Sessions, database_url, make_engine, migrate, outages_typed
from .errors import (
    FileNotStored,
    ProjectNotFound,
    RunNotFound,
    ShareLinkNotFound,
    VersionNotFound,
)
from .models import (
    BlobRow,
    EventRow,
    MessageRow,
    ProjectRow,
    RunRow,
    SandboxRow,
    ShareLinkRow,
    VersionFileRow,
    VersionRow,
    WorkingFileRow,
    now,
)
from .records import (
    Flow,
    ProjectRecord,
    RunRecord,
    RunState,
    SandboxLifecycle,
    ShareLinkRecord,
    VersionRecord,
    narrow,
)


def _project(row: ProjectRow) -> ProjectRecord:
    return ProjectRecord(
        id=row.id,
        name=row.name,
        project_type=row.project_type,
        flow=narrow(row.flow, Flow),
        agents=list(row.agents),
        provider=narrow(row.provider, SandboxProviderName),
        sandbox_id=row.sandbox_id,
        preview_token=row.preview_token,
        public=row.public,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _version(row: VersionRow, files: int) -> VersionRecord:
    return VersionRecord(
        number=row.number,
        run_id=row.run_id,
        message=row.message,
        commit=row.commit,
        created_at=row.created_at,
        files=files,
    )


def sha256(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def _insert(session: AsyncSession, table: Any) -> Any:
    """An INSERT that can skip rows already there (each dialect spells it its own way)."""
    assert session.bind is not None
    return (pg_insert if session.bind.dialect.name == "postgresql" else sqlite_insert)(table)


class Store:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._session = Sessions(engine)

    @classmethod
    async def open(cls, url: str | None, data_dir: Path, *, upgrade: bool = True) -> Store:
        """Connect; `upgrade` runs the migrations (the server does, its workers need not)."""
        if url is None:
            await asyncio.to_thread(data_dir.mkdir, parents=True, exist_ok=True)
        engine = make_engine(database_url(url, data_dir))
        if upgrade:
            with outages_typed():
                await migrate(engine)
        return cls(engine)

    async def close(self) -> None:
        await self.engine.dispose()

    # -- projects -------------------------------------------------------------------------------

    async def create_project(
        self,
        *,
        name: str,
        project_type: str,
        flow: Flow,
        agents: list[str],
        provider: SandboxProviderName,
        public: bool = False,
    ) -> ProjectRecord:
        row = ProjectRow(
            id=new_id("project"),
            name=name,
            project_type=project_type,
            flow=flow,
            agents=agents,
            provider=provider,
            sandbox_id=None,
            preview_token=secrets.token_urlsafe(24),
            public=public,
            created_at=now(),
            updated_at=now(),
        )
        async with self._session.begin() as session:
            session.add(row)
        return _project(row)

    async def get_project(self, project_id: str) -> ProjectRecord:
        async with self._session() as session:
            row = await session.get(ProjectRow, project_id)
            if row is None:
                raise ProjectNotFound(f"no project {project_id!r}")
            return _project(row)

    async def list_projects(self) -> list[ProjectRecord]:
        async with self._session() as session:
            rows = await session.scalars(select(ProjectRow).order_by(ProjectRow.updated_at.desc()))
            return [_project(r) for r in rows]

    async def project_by_sandbox(self, sandbox_id: str) -> ProjectRecord:
        async with self._session() as session:
            row = await session.scalar(
                select(ProjectRow).where(ProjectRow.sandbox_id == sandbox_id)
            )
            if row is None:
                raise ProjectNotFound(
                    f"No project owns sandbox {sandbox_id!r}; send its projectId instead."
                )
            return _project(row)

    async def set_project_sandbox(self, project_id: str, sandbox_id: str | None) -> None:
        async with self._session.begin() as session:
            await session.execute(
                update(ProjectRow)
                .where(ProjectRow.id == project_id)
                .values(sandbox_id=sandbox_id, updated_at=now())
            )

    async def delete_project(self, project_id: str) -> None:
        async with self._session.begin() as session:
            await session.execute(delete(ProjectRow).where(ProjectRow.id == project_id))

    # -- conversation -----------------------------------------------------------------------------

    async def add_message(
        self, project_id: str, run_id: str | None, role: Role, content: str
    ) -> None:
        async with self._session.begin() as session:
            session.add(
                MessageRow(project_id=project_id, run_id=run_id, role=role, content=content)
            )

    async def history(self, project_id: str) -> list[ChatMessage]:
        async with self._session() as session:
            rows = await session.scalars(
                select(MessageRow)
                .where(MessageRow.project_id == project_id)
                .order_by(MessageRow.id)
            )
            return [ChatMessage(role=narrow(r.role, Role), content=r.content) for r in rows]

    # -- runs and events ---------------------------------------------------------------------------

    async def create_run(self, run_id: str, project_id: str, request: dict[str, Any]) -> None:
        async with self._session.begin() as session:
            session.add(
                RunRow(
                    id=run_id,
                    project_id=project_id,
                    state="running",
                    request=request,
                    tokens_used=0,
                    created_at=now(),
                )
            )

    async def finish_run(
        self, run_id: str, state: RunState, *, tokens_used: int, sandbox_id: str | None
    ) -> None:
        async with self._session.begin() as session:
            # A run ends once: an end written for it already (by a replica that found its
            # own replica dead) stays.
            await session.execute(
                update(RunRow)
                .where(RunRow.id == run_id, RunRow.state == "running")
                .values(
                    state=state, tokens_used=tokens_used, sandbox_id=sandbox_id, finished_at=now()
                )
            )

    async def append_event(self, run_id: str, seq: int, body: str) -> None:
        """Store event `seq` of a run. Storing it again is a no-op: a write retried after a
        lost reply (the database committed, then the connection broke) stores it once."""
        async with self._session.begin() as session:
            await session.execute(
                _insert(session, EventRow)
                .values(run_id=run_id, seq=seq, body=body, created_at=now())
                .on_conflict_do_nothing(index_elements=["run_id", "seq"])
            )

    async def events_after(self, run_id: str, after: int) -> list[tuple[int, str]]:
        async with self._session() as session:
            rows = await session.execute(
                select(EventRow.seq, EventRow.body)
                .where(EventRow.run_id == run_id, EventRow.seq > after)
                .order_by(EventRow.seq)
            )
            return [(seq, body) for seq, body in rows]

    async def last_event_seq(self, run_id: str) -> int:
        """The highest seq stored for a run (0 if none): the count, unless writes were lost."""
        async with self._session() as session:
            last = await session.scalar(
                select(func.max(EventRow.seq)).where(EventRow.run_id == run_id)
            )
            return int(last or 0)

    async def get_run(self, run_id: str) -> RunRecord:
        runs = await self._runs(RunRow.id == run_id)
        if not runs:
            raise RunNotFound(f"No run {run_id!r}.")
        return runs[0]

    async def list_runs(self, project_id: str | None = None) -> list[RunRecord]:
        return await self._runs(RunRow.project_id == project_id if project_id else None)

    async def _runs(self, where: Any) -> list[RunRecord]:
        counts = (
            select(EventRow.run_id, func.count().label("n")).group_by(EventRow.run_id).subquery()
        )
        query = select(RunRow, counts.c.n).outerjoin(counts, counts.c.run_id == RunRow.id)
        if where is not None:
            query = query.where(where)
        async with self._session() as session:
            rows = await session.execute(query.order_by(RunRow.created_at))
            return [
                RunRecord(
                    id=r.id,
                    project_id=r.project_id,
                    state=narrow(r.state, RunState),
                    request=dict(r.request),
                    sandbox_id=r.sandbox_id,
                    tokens_used=r.tokens_used,
                    created_at=r.created_at,
                    finished_at=r.finished_at,
                    events=n or 0,
                )
                for r, n in rows
            ]

    async def last_render(self, project_id: str) -> dict[str, Any] | None:
        """The rendered check of the project's last successful run, if it had one."""
        async with self._session() as session:
            body = await session.scalar(
                select(EventRow.body)
                .join(RunRow, RunRow.id == EventRow.run_id)
                .where(RunRow.project_id == project_id, RunRow.state == "succeeded")
                .order_by(RunRow.created_at.desc(), EventRow.seq.desc())
                .limit(1)
            )
        if body is None:
            return None
        render = json.loads(body).get("data", {}).get("render")
        return render if isinstance(render, dict) else None

    async def running_runs(self) -> list[RunRecord]:
        return await self._runs(RunRow.state == "running")

    # -- files -------------------------------------------------------------------------------------

    async def _put_blobs(self, session: Any, files: dict[str, bytes]) -> dict[str, str]:
        shas = {path: sha256(content) for path, content in files.items()}
        if not shas:
            return shas
        existing = set(
            await session.scalars(select(BlobRow.sha).where(BlobRow.sha.in_(set(shas.values()))))
        )
        new = {sha: files[path] for path, sha in shas.items() if sha not in existing}
        if new:
            # Another transaction may add the same content meanwhile; either copy will do.
            await session.execute(
                _insert(session, BlobRow)
                .values([{"sha": sha, "content": content} for sha, content in new.items()])
                .on_conflict_do_nothing(index_elements=["sha"])
            )
        return shas

    async def write_file(self, project_id: str, path: str, content: bytes) -> None:
        async with self._session.begin() as session:
            shas = await self._put_blobs(session, {path: content})
            row = await session.get(WorkingFileRow, (project_id, path))
            if row is None:
                session.add(
                    WorkingFileRow(
                        project_id=project_id, path=path, blob_sha=shas[path], updated_at=now()
                    )
                )
            else:
                row.blob_sha = shas[path]
                row.updated_at = now()

    async def delete_file(self, project_id: str, path: str) -> bool:
        async with self._session.begin() as session:
            result = await session.execute(
                delete(WorkingFileRow).where(
                    WorkingFileRow.project_id == project_id,
                    (WorkingFileRow.path == path) | WorkingFileRow.path.startswith(path + "/"),
                )
            )
            return bool(getattr(result, "rowcount", 0))

    async def read_file(self, project_id: str, path: str) -> bytes:
        async with self._session() as session:
            content: bytes | None = await session.scalar(
                select(BlobRow.content)
                .join(WorkingFileRow, WorkingFileRow.blob_sha == BlobRow.sha)
                .where(WorkingFileRow.project_id == project_id, WorkingFileRow.path == path)
            )
            if content is None:
                raise FileNotStored(f"Project {project_id} has no file {path!r}.")
            return content

    async def files(self, project_id: str) -> dict[str, bytes]:
        async with self._session() as session:
            rows = await session.execute(
                select(WorkingFileRow.path, BlobRow.content)
                .join(BlobRow, WorkingFileRow.blob_sha == BlobRow.sha)
                .where(WorkingFileRow.project_id == project_id)
                .order_by(WorkingFileRow.path)
            )
            return {path: content for path, content in rows}

    async def file_sizes(self, project_id: str) -> dict[str, int]:
        async with self._session() as session:
            rows = await session.execute(
                select(WorkingFileRow.path, func.length(BlobRow.content))
                .join(BlobRow, WorkingFileRow.blob_sha == BlobRow.sha)
                .where(WorkingFileRow.project_id == project_id)
                .order_by(WorkingFileRow.path)
            )
            return {path: int(size) for path, size in rows}

    # -- versions ----------------------------------------------------------------------------------

    async def save_version(
        self,
        project_id: str,
        files: dict[str, bytes],
        *,
        message: str,
        run_id: str | None = None,
        commit: str | None = None,
    ) -> VersionRecord:
        """Record `files` as the project's next version and make them its working tree.

        A run has one version: saving it again (a retry after a lost reply) returns the one
        stored."""
        async with self._session.begin() as session:
            if run_id is not None and (saved := await self._run_version(session, run_id)):
                return saved
            shas = await self._put_blobs(session, files)
            last = await session.scalar(
                select(func.max(VersionRow.number)).where(VersionRow.project_id == project_id)
            )
            version = VersionRow(
                project_id=project_id,
                number=(last or 0) + 1,
                run_id=run_id,
                message=message,
                commit=commit,
                created_at=now(),
            )
            session.add(version)
            await session.flush()
            for path, sha in shas.items():
                session.add(VersionFileRow(version_id=version.id, path=path, blob_sha=sha))
            await session.execute(
                delete(WorkingFileRow).where(WorkingFileRow.project_id == project_id)
            )
            for path, sha in shas.items():
                session.add(
                    WorkingFileRow(project_id=project_id, path=path, blob_sha=sha, updated_at=now())
                )
            await session.execute(
                update(ProjectRow).where(ProjectRow.id == project_id).values(updated_at=now())
            )
            return _version(version, len(files))

    async def _run_version(self, session: AsyncSession, run_id: str) -> VersionRecord | None:
        row = await session.scalar(select(VersionRow).where(VersionRow.run_id == run_id))
        if row is None:
            return None
        files = await session.scalar(
            select(func.count()).where(VersionFileRow.version_id == row.id)
        )
        return _version(row, files or 0)

    async def list_versions(self, project_id: str) -> list[VersionRecord]:
        async with self._session() as session:
            counts = (
                select(VersionFileRow.version_id, func.count().label("n"))
                .group_by(VersionFileRow.version_id)
                .subquery()
            )
            rows = await session.execute(
                select(VersionRow, counts.c.n)
                .outerjoin(counts, counts.c.version_id == VersionRow.id)
                .where(VersionRow.project_id == project_id)
                .order_by(VersionRow.number)
            )
            return [_version(v, n or 0) for v, n in rows]

    async def version_files(self, project_id: str, number: int) -> dict[str, bytes]:
        async with self._session() as session:
            version_id = await session.scalar(
                select(VersionRow.id).where(
                    VersionRow.project_id == project_id, VersionRow.number == number
                )
            )
            if version_id is None:
                raise VersionNotFound(f"project {project_id} has no version {number}")
            rows = await session.execute(
                select(VersionFileRow.path, BlobRow.content)
                .join(BlobRow, VersionFileRow.blob_sha == BlobRow.sha)
                .where(VersionFileRow.version_id == version_id)
                .order_by(VersionFileRow.path)
            )
            return {path: content for path, content in rows}

    # -- sandboxes ---------------------------------------------------------------------------------

    async def record_sandbox(
        self, sandbox_id: str, provider: str, project_id: str | None, state: SandboxLifecycle
    ) -> None:
        async with self._session.begin() as session:
            row = await session.get(SandboxRow, sandbox_id)
            if row is None:
                session.add(
                    SandboxRow(
                        id=sandbox_id,
                        provider=provider,
                        project_id=project_id,
                        state=state,
                        created_at=now(),
                    )
                )
            else:
                row.state = state
                if state == "deleted":
                    row.deleted_at = now()

    # -- share links -------------------------------------------------------------------------------

    async def create_share_link(
        self, project_id: str, token: str, expires_at: float | None
    ) -> ShareLinkRecord:
        row = ShareLinkRow(
            id=new_id("share"),
            project_id=project_id,
            token=token,
            created_at=now(),
            expires_at=expires_at,
        )
        async with self._session.begin() as session:
            session.add(row)
        return _share_link(row)

    async def share_links(self, project_id: str) -> list[ShareLinkRecord]:
        async with self._session() as session:
            rows = await session.scalars(
                select(ShareLinkRow)
                .where(ShareLinkRow.project_id == project_id)
                .order_by(ShareLinkRow.created_at)
            )
            return [_share_link(r) for r in rows]

    async def revoke_share_link(self, project_id: str, link_id: str) -> ShareLinkRecord:
        async with self._session.begin() as session:
            row = await session.get(ShareLinkRow, link_id)
            if row is None or row.project_id != project_id:
                raise ShareLinkNotFound(f"Project {project_id} has no share link {link_id!r}.")
            if row.revoked_at is None:
                row.revoked_at = now()
            return _share_link(row)


def _share_link(row: ShareLinkRow) -> ShareLinkRecord:
    return ShareLinkRecord(
        id=row.id,
        project_id=row.project_id,
        token=row.token,
        created_at=row.created_at,
        expires_at=row.expires_at,
        revoked_at=row.revoked_at,
    )
