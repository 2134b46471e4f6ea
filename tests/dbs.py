"""Databases for tests: a fresh SQLite file, or a fresh Postgres database on 127.0.0.1:5432."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

POSTGRES_ADMIN = {"host": "127.0.0.1", "port": 5432, "user": "postgres", "database": "test"}


async def _admin_execute(sql: str) -> None:
    import asyncpg

    connection = await asyncpg.connect(**POSTGRES_ADMIN, timeout=5)
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


@asynccontextmanager
async def database(kind: str, tmp_path: Path) -> AsyncIterator[str]:
    """A URL for an empty database of `kind`, dropped afterwards."""
    if kind == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'test.db'}"
        return
    name = "sandforge_test_" + secrets.token_hex(6)
    try:
        await _admin_execute(f"CREATE DATABASE {name}")
    except (OSError, Exception) as exc:
        pytest.skip(f"Postgres on 127.0.0.1:5432 is unreachable ({exc}); skipping Postgres tests")
    try:
        yield f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
    finally:
        await _admin_execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
