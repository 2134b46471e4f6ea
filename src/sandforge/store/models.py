"""Tables: projects, messages, runs, events, files (working tree and versions), sandboxes,
share links, and shipping: the cost ledger, published builds, project settings, GitHub links."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def now() -> float:
    return time.time()


MAX_PATH_CHARS = 500
"""The longest file path the store keeps (the column's length; Postgres enforces it)."""


class Base(DeclarativeBase):
    pass


class ProjectRow(Base):
    __tablename__ = "projects"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    project_type: Mapped[str] = mapped_column(String(40))
    flow: Mapped[str] = mapped_column(String(20))
    """`sandbox` (files live in a sandbox, mirrored here) or `persistent` (files live here)."""
    agents: Mapped[list[str]] = mapped_column(JSON)
    provider: Mapped[str] = mapped_column(String(20))
    sandbox_id: Mapped[str | None] = mapped_column(String(80), nullable=True)
    preview_token: Mapped[str] = mapped_column(String(80))
    public: Mapped[bool] = mapped_column(default=False)
    model: Mapped[str | None] = mapped_column(String(200), nullable=True)
    """The model the project's runs use unless a request names one; None: the server's."""
    created_at: Mapped[float] = mapped_column(Float, default=now)
    updated_at: Mapped[float] = mapped_column(Float, default=now)


class MessageRow(Base):
    __tablename__ = "messages"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    project_id: Mapped[str] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), index=True
    )
    run_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    role: Mapped[str] = mapped_column(String(20))
    content: Mapped[str] = mapped_column(Text)
    created_at: Mapped[float] = mapped_column(Float, default=now)


class RunRow(Base):
    __tablename__ = "runs"
    __table_args__ = (Index("ix_runs_state_replica", "state", "replica_id"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    project_id: Mapped[str] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), index=True
    )
    state: Mapped[str] = mapped_column(String(20))
    request: Mapped[dict[str, Any]] = mapped_column(JSON)
    sandbox_id: Mapped[str | None] = mapped_column(String(80), nullable=True)
    tokens_used: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[float] = mapped_column(Float, default=now)
    finished_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    replica_id: Mapped[str | None] = mapped_column(String(80), nullable=True)
    """With replicas: the one executing the run; None while it waits in the queue."""
    affinity: Mapped[str | None] = mapped_column(String(80), nullable=True)
    """With replicas: the one holding the project's local sandbox, which takes the run
    while it is alive."""


class EventRow(Base):
    __tablename__ = "events"

    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    body: Mapped[str] = mapped_column(Text)
    """The event's wire JSON, exactly as streamed."""
    created_at: Mapped[float] = mapped_column(Float, default=now)


class WorkingFileRow(Base):
    """A project's current files: the last turn's, or the live tree of the persistent flow."""

    __tablename__ = "files"

    project_id: Mapped[str] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True
    )
    path: Mapped[str] = mapped_column(String(MAX_PATH_CHARS), primary_key=True)
    blob_sha: Mapped[str] = mapped_column(ForeignKey("blobs.sha"))
    updated_at: Mapped[float] = mapped_column(Float, default=now)


class BlobRow(Base):
    """File contents by SHA-256, shared by every version that has them."""

    __tablename__ = "blobs"

    sha: Mapped[str] = mapped_column(String(64), primary_key=True)
    content: Mapped[bytes] = mapped_column(LargeBinary)


class VersionRow(Base):
    __tablename__ = "versions"
    __table_args__ = (UniqueConstraint("project_id", "number"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    project_id: Mapped[str] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), index=True
    )
    number: Mapped[int] = mapped_column(Integer)
    run_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    message: Mapped[str] = mapped_column(Text)
    commit: Mapped[str | None] = mapped_column(String(64), nullable=True)
    kind: Mapped[str] = mapped_column(String(20), default="run", server_default="run")
    """What made it: a `run`, the user's manual `edit`, or a `restore` of an older version."""
    created_at: Mapped[float] = mapped_column(Float, default=now)


class VersionFileRow(Base):
    __tablename__ = "version_files"

    version_id: Mapped[int] = mapped_column(
        ForeignKey("versions.id", ondelete="CASCADE"), primary_key=True
    )
    path: Mapped[str] = mapped_column(String(MAX_PATH_CHARS), primary_key=True)
    blob_sha: Mapped[str] = mapped_column(ForeignKey("blobs.sha"))


class SandboxRow(Base):
    __tablename__ = "sandboxes"

    id: Mapped[str] = mapped_column(String(80), primary_key=True)
    provider: Mapped[str] = mapped_column(String(20))
    project_id: Mapped[str | None] = mapped_column(String(40), nullable=True, index=True)
    state: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[float] = mapped_column(Float, default=now)
    deleted_at: Mapped[float | None] = mapped_column(Float, nullable=True)


class ShareLinkRow(Base):
    """A token that opens a project's preview, besides the project's own: for sharing."""

    __tablename__ = "share_links"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    project_id: Mapped[str] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), index=True
    )
    token: Mapped[str] = mapped_column(String(80), unique=True)
    created_at: Mapped[float] = mapped_column(Float, default=now)
    expires_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    revoked_at: Mapped[float | None] = mapped_column(Float, nullable=True)


class RunUsageRow(Base):
    """The cost ledger: what one run used. Kept when its project is deleted, so deleting a
    project does not hand its spending back to the daily budget."""

    __tablename__ = "run_usage"

    run_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    project_id: Mapped[str] = mapped_column(String(40), index=True)
    model: Mapped[str | None] = mapped_column(String(200), nullable=True)
    input_tokens: Mapped[int] = mapped_column(Integer, default=0)
    output_tokens: Mapped[int] = mapped_column(Integer, default=0)
    cache_read_tokens: Mapped[int] = mapped_column(Integer, default=0)
    cache_write_tokens: Mapped[int] = mapped_column(Integer, default=0)
    requests: Mapped[int] = mapped_column(Integer, default=0)
    cost_usd: Mapped[float | None] = mapped_column(Float, nullable=True)
    """None when the model has no known price."""
    sandbox_wall_s: Mapped[float] = mapped_column(Float, default=0.0)
    sandbox_cpu_s: Mapped[float] = mapped_column(Float, default=0.0)
    sandbox_memory_gb_s: Mapped[float] = mapped_column(Float, default=0.0)
    created_at: Mapped[float] = mapped_column(Float, default=now, index=True)


class PublishedRow(Base):
    """A project's production build, served publicly at `{slug}.apps.{domain}`."""

    __tablename__ = "published"

    project_id: Mapped[str] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True
    )
    slug: Mapped[str] = mapped_column(String(63), unique=True)
    version: Mapped[int] = mapped_column(Integer)
    published_at: Mapped[float] = mapped_column(Float, default=now)


class PublishedFileRow(Base):
    __tablename__ = "published_files"

    project_id: Mapped[str] = mapped_column(
        ForeignKey("published.project_id", ondelete="CASCADE"), primary_key=True
    )
    path: Mapped[str] = mapped_column(String(MAX_PATH_CHARS), primary_key=True)
    blob_sha: Mapped[str] = mapped_column(ForeignKey("blobs.sha"))


class ProjectSettingsRow(Base):
    """A project's sandbox settings: resources and egress (JSON, camelCase as the API)."""

    __tablename__ = "project_settings"

    project_id: Mapped[str] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True
    )
    sandbox: Mapped[dict[str, Any]] = mapped_column(JSON)
    updated_at: Mapped[float] = mapped_column(Float, default=now)


class AppEnvRow(Base):
    """An environment variable of a project's app, its value encrypted (Fernet)."""

    __tablename__ = "app_env"

    project_id: Mapped[str] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True
    )
    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    ciphertext: Mapped[str] = mapped_column(Text)


class GitHubLinkRow(Base):
    """Where a project is pushed on GitHub, and the last version pushed."""

    __tablename__ = "github_links"

    project_id: Mapped[str] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True
    )
    repo: Mapped[str] = mapped_column(String(200))
    pushed_version: Mapped[int] = mapped_column(Integer, default=0)
    pushed_commit: Mapped[str | None] = mapped_column(String(64), nullable=True)
    updated_at: Mapped[float] = mapped_column(Float, default=now)


class ReplicaRow(Base):
    """A sandforge process sharing the database; alive while its heartbeat is recent."""

    __tablename__ = "replicas"

    id: Mapped[str] = mapped_column(String(80), primary_key=True)
    address: Mapped[str] = mapped_column(String(300))
    """Where the other replicas reach it (previews of its local sandboxes)."""
    started_at: Mapped[float] = mapped_column(Float)
    heartbeat_at: Mapped[float] = mapped_column(Float, index=True)
    """The database's clock, so replicas on machines whose clocks differ agree."""
    draining: Mapped[bool] = mapped_column(Boolean, default=False)
    capacity: Mapped[int] = mapped_column(Integer)
    running: Mapped[int] = mapped_column(Integer, default=0)
    sandboxes: Mapped[list[str]] = mapped_column(JSON)
    """Its local sandboxes, as of its last heartbeat."""
