"""Shipping: the cost ledger, published builds, project settings (sandbox, app env), GitHub.

Revision ID: 0004_ship
Revises: 0003_replicas
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_ship"
down_revision = "0003_replicas"
branch_labels = None
depends_on = None


def _project_fk() -> sa.Column[str]:
    return sa.Column(
        "project_id",
        sa.String(40),
        sa.ForeignKey("projects.id", ondelete="CASCADE"),
        primary_key=True,
    )


def upgrade() -> None:
    op.create_table(
        "run_usage",
        sa.Column("run_id", sa.String(40), primary_key=True),
        sa.Column("project_id", sa.String(40), nullable=False, index=True),
        sa.Column("model", sa.String(200), nullable=True),
        sa.Column("input_tokens", sa.Integer(), nullable=False),
        sa.Column("output_tokens", sa.Integer(), nullable=False),
        sa.Column("cache_read_tokens", sa.Integer(), nullable=False),
        sa.Column("cache_write_tokens", sa.Integer(), nullable=False),
        sa.Column("requests", sa.Integer(), nullable=False),
        sa.Column("cost_usd", sa.Float(), nullable=True),
        sa.Column("sandbox_wall_s", sa.Float(), nullable=False),
        sa.Column("sandbox_cpu_s", sa.Float(), nullable=False),
        sa.Column("sandbox_memory_gb_s", sa.Float(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False, index=True),
    )
    op.create_table(
        "published",
        _project_fk(),
        sa.Column("slug", sa.String(63), nullable=False, unique=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("published_at", sa.Float(), nullable=False),
    )
    op.create_table(
        "published_files",
        sa.Column(
            "project_id",
            sa.String(40),
            sa.ForeignKey("published.project_id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("path", sa.String(500), primary_key=True),
        sa.Column("blob_sha", sa.String(64), sa.ForeignKey("blobs.sha"), nullable=False),
    )
    op.create_table(
        "project_settings",
        _project_fk(),
        sa.Column("sandbox", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
    )
    op.create_table(
        "app_env",
        _project_fk(),
        sa.Column("name", sa.String(128), primary_key=True),
        sa.Column("ciphertext", sa.Text(), nullable=False),
    )
    op.create_table(
        "github_links",
        _project_fk(),
        sa.Column("repo", sa.String(200), nullable=False),
        sa.Column("pushed_version", sa.Integer(), nullable=False),
        sa.Column("pushed_commit", sa.String(64), nullable=True),
        sa.Column("updated_at", sa.Float(), nullable=False),
    )


def downgrade() -> None:
    for table in (
        "github_links",
        "app_env",
        "project_settings",
        "published_files",
        "published",
        "run_usage",
    ):
        op.drop_table(table)
