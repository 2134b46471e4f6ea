"""A project's sandbox settings (resources, egress) and its app's environment (ciphertext)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select

from .db import Sessions
from .models import AppEnvRow, ProjectSettingsRow, now
from .repo import Store


class ProjectSettingsStore:
    def __init__(self, store: Store) -> None:
        self._session = Sessions(store.engine)

    async def sandbox(self, project_id: str) -> dict[str, Any]:
        async with self._session() as session:
            row = await session.get(ProjectSettingsRow, project_id)
            return dict(row.sandbox) if row is not None else {}

    async def set_sandbox(self, project_id: str, sandbox: dict[str, Any]) -> None:
        async with self._session.begin() as session:
            row = await session.get(ProjectSettingsRow, project_id)
            if row is None:
                session.add(
                    ProjectSettingsRow(project_id=project_id, sandbox=sandbox, updated_at=now())
                )
            else:
                row.sandbox, row.updated_at = sandbox, now()

    async def env(self, project_id: str) -> dict[str, str]:
        """Names and ciphertexts."""
        async with self._session() as session:
            rows = await session.execute(
                select(AppEnvRow.name, AppEnvRow.ciphertext)
                .where(AppEnvRow.project_id == project_id)
                .order_by(AppEnvRow.name)
            )
            return {name: ciphertext for name, ciphertext in rows}

    async def update_env(self, project_id: str, changes: dict[str, str | None]) -> None:
        """Set each name to its ciphertext, or remove it (None), in one transaction."""
        async with self._session.begin() as session:
            for name, ciphertext in changes.items():
                row = await session.get(AppEnvRow, (project_id, name))
                if ciphertext is None:
                    if row is not None:
                        await session.execute(
                            delete(AppEnvRow).where(
                                AppEnvRow.project_id == project_id, AppEnvRow.name == name
                            )
                        )
                elif row is None:
                    session.add(AppEnvRow(project_id=project_id, name=name, ciphertext=ciphertext))
                else:
                    row.ciphertext = ciphertext
