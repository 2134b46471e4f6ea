"""What the store reports: something asked for is not there, or the database is not usable.

The database's own failures arrive as driver- and dialect-specific exceptions (an
OSError from a refused connect, SQLite's "database or disk is full", a Postgres
SQLSTATE). `outage()` turns those that mean "not now" into two typed errors, so the
API answers 503 or 507 with a JSON body, and a writer knows what is worth retrying.
"""

from __future__ import annotations

import errno
import sqlite3

from sqlalchemy import exc as sa

from ..errors import InsufficientStorage, NotFound, Unavailable


class ProjectNotFound(NotFound):
    code = "project_not_found"


class VersionNotFound(NotFound):
    code = "version_not_found"


class RunNotFound(NotFound):
    code = "run_not_found"


class FileNotStored(NotFound):
    """A project file the store does not hold (the persistent flow's missing file)."""

    code = "file_not_found"


class ShareLinkNotFound(NotFound):
    code = "share_link_not_found"


class StoreUnavailable(Unavailable):
    """The database does not answer (stopped, restarting, unreachable, busy)."""

    code = "store_unavailable"


class StoreDiskFull(InsufficientStorage):
    """The database's disk is full: the same condition, and code, as the server's data dir
    being full (`disk_full` is a sandbox's own disk)."""


TRANSIENT: tuple[type[Exception], ...] = (StoreUnavailable, StoreDiskFull)
"""Store errors that pass by themselves: a write may be tried again."""

_DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
_SQLITE_TRANSIENT = (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_IOERR)
# SQLSTATE classes: 08 connection exception, 57P operator intervention (shutdown, starting
# up), 53 insufficient resources (53100 is disk_full), 40 transaction rollback (deadlock).
_PG_TRANSIENT_PREFIXES = ("08", "57P", "53", "40")


def _driver_error(exc: BaseException) -> BaseException:
    """The driver's exception inside SQLAlchemy's wrapper (for asyncpg, its adapter's, which
    carries the SQLSTATE)."""
    if isinstance(exc, sa.DBAPIError) and isinstance(exc.orig, BaseException):
        return exc.orig
    return exc


def _disk_full(driver: BaseException) -> bool:
    if isinstance(driver, OSError):
        return driver.errno in _DISK_FULL_ERRNOS
    if isinstance(driver, sqlite3.Error):
        return getattr(driver, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL
    return getattr(driver, "sqlstate", None) == "53100"


def _unavailable(exc: BaseException, driver: BaseException) -> bool:
    if isinstance(exc, sa.DBAPIError) and exc.connection_invalidated:
        return True
    if isinstance(driver, OSError | TimeoutError) or isinstance(exc, sa.TimeoutError):
        return True
    if isinstance(driver, sqlite3.Error):
        code = getattr(driver, "sqlite_errorcode", 0) & 0xFF  # the primary code
        return code in _SQLITE_TRANSIENT
    sqlstate = getattr(driver, "sqlstate", None) or ""
    return sqlstate.startswith(_PG_TRANSIENT_PREFIXES) or isinstance(exc, sa.InterfaceError)


def outage(exc: BaseException) -> StoreUnavailable | StoreDiskFull | None:
    """The typed error for a database failure that is expected to pass; None for others
    (a constraint violated, a bug), which must not be retried or disguised."""
    if not isinstance(exc, sa.SQLAlchemyError | OSError | TimeoutError):
        return None
    driver = _driver_error(exc)
    if _disk_full(driver):
        return StoreDiskFull("The database's disk is full: free some space, then try again.")
    if _unavailable(exc, driver):
        return StoreUnavailable("The database is not answering; try again in a moment.")
    return None
