"""Databases for tests: a fresh SQLite file, or a fresh Postgres database on 127.0.0.1:5432."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
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


# -- databases a test may take away: a private Postgres, and SQLite on a small filesystem ----

POSTGRES_BIN = max(Path("/usr/lib/postgresql").glob("*/bin"), default=Path("/usr/bin"))
AS_POSTGRES = ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups"]


async def _run(*argv: str) -> None:
    process = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    output, _ = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed: {output.decode(errors='replace')}")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class PrivatePostgres:
    """A Postgres cluster of its own (never the shared one on 5432), which a test may stop
    and start; it runs as the `postgres` user, since Postgres refuses to run as root."""

    root: Path
    port: int

    @property
    def data(self) -> Path:
        return self.root / "data"

    def url(self, database: str) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{database}"

    async def ctl(self, *args: str) -> None:
        await _run(*AS_POSTGRES, str(POSTGRES_BIN / "pg_ctl"), "-D", str(self.data), *args)

    async def start(self) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        await self.ctl("-o", options, "-l", str(self.root / "log"), "-w", "start")

    async def stop(self) -> None:
        # "fast": sessions are cut at once, as a crash or a restart by an operator would.
        await self.ctl("-m", "fast", "-w", "stop")

    async def create_database(self) -> str:
        import asyncpg

        name = "sandforge_" + secrets.token_hex(6)
        connection = await asyncpg.connect(
            host="127.0.0.1", port=self.port, user="postgres", database="postgres", timeout=10
        )
        try:
            await connection.execute(f"CREATE DATABASE {name}")
        finally:
            await connection.close()
        return self.url(name)


@asynccontextmanager
async def private_postgres() -> AsyncIterator[PrivatePostgres]:
    if not (POSTGRES_BIN / "initdb").exists() or os.geteuid() != 0:
        pytest.skip("a private Postgres needs the server binaries and root (to become postgres)")
    root = Path(tempfile.mkdtemp(prefix="sandforge-pg-"))
    os.chown(root, *_postgres_ids())
    cluster = PrivatePostgres(root, _free_port())
    try:
        await _run(
            *AS_POSTGRES,
            str(POSTGRES_BIN / "initdb"),
            "-D",
            str(cluster.data),
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
        )
        await cluster.start()
        yield cluster
    finally:
        with contextlib.suppress(RuntimeError):
            await cluster.ctl("-m", "immediate", "-w", "stop")
        shutil.rmtree(root, ignore_errors=True)


def _postgres_ids() -> tuple[int, int]:
    import pwd

    entry = pwd.getpwnam("postgres")
    return entry.pw_uid, entry.pw_gid


@dataclass
class SmallDisk:
    """A tmpfs of a few MiB that a test can fill to the last byte, and empty again."""

    path: Path

    def fill(self) -> None:
        """Take every free byte: big writes until none fits, then smaller ones down to one."""
        fd = os.open(self.path / "filler", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            for size in (1 << 20, 4096, 1):
                block = b"\0" * size
                with contextlib.suppress(OSError):
                    while os.write(fd, block):
                        pass
        finally:
            os.close(fd)

    def free(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self.path / "filler").unlink()


@contextmanager
def small_disk(size_mb: int = 64) -> Iterator[SmallDisk]:
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    path = Path(tempfile.mkdtemp(prefix="sandforge-full-"))
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_mb}m,mode=0755", "tmpfs", str(path)],
        check=True,
    )
    try:
        yield SmallDisk(path)
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)
        shutil.rmtree(path, ignore_errors=True)
