"""Engines and migrations: SQLite in the data dir by default, Postgres by URL."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, event, text
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.ext.asyncio import AsyncSession as AsyncSession

from .errors import outage

MIGRATIONS = str(Path(__file__).with_name("migrations"))

log = logging.getLogger(__name__)


def database_url(configured: str | None, data_dir: Path) -> str:
    if configured:
        if configured.startswith("postgresql://"):
            return "postgresql+asyncpg://" + configured.removeprefix("postgresql://")
        return configured
    return f"sqlite+aiosqlite:///{data_dir / 'sandforge.db'}"


def make_engine(url: str) -> AsyncEngine:
    if url.startswith("sqlite"):
        engine = create_async_engine(url, connect_args={"timeout": 30})

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_connection: object, _: object) -> None:
            cursor = dbapi_connection.cursor()  # type: ignore[attr-defined]
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        return engine
    return create_async_engine(url, pool_pre_ping=True)


def _upgrade(connection: Connection) -> None:
    config = Config()
    config.set_main_option("script_location", MIGRATIONS)
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


async def migrate(engine: AsyncEngine) -> None:
    async with engine.begin() as connection:
        await connection.run_sync(_upgrade)


def sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


@contextlib.contextmanager
def outages_typed() -> Iterator[None]:
    """Raise the database's passing failures as StoreUnavailable / StoreDiskFull."""
    try:
        yield
    except Exception as exc:
        typed = outage(exc)
        if typed is None:
            raise
        log.warning("database: %s: %s", type(exc).__name__, exc)
        raise typed from exc


class Sessions:
    """Sessions for the Store, whose outages come out typed (see store/errors.py)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._make = sessionmaker(engine)

    @contextlib.asynccontextmanager
    async def __call__(self) -> AsyncIterator[AsyncSession]:
        with outages_typed():
            async with self._make() as session:
                yield session

    @contextlib.asynccontextmanager
    async def begin(self) -> AsyncIterator[AsyncSession]:
        """A session in a transaction, committed when the block ends."""
        with outages_typed():
            async with self._make.begin() as session:
                yield session


HEALTH_TIMEOUT_S = 2.0


async def reachable(engine: AsyncEngine) -> bool:
    """The database answers a trivial query within HEALTH_TIMEOUT_S."""

    async def ask() -> None:
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 1"))

    try:
        await asyncio.wait_for(ask(), HEALTH_TIMEOUT_S)
    except Exception:
        return False
    return True
