"""Replicas: a registry with heartbeats, and the runs queue (who runs a run, who may).

Revision ID: 0003_replicas
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_replicas"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "replicas",
        sa.Column("id", sa.String(80), primary_key=True),
        sa.Column("address", sa.String(300), nullable=False),
        sa.Column("started_at", sa.Float(), nullable=False),
        sa.Column("heartbeat_at", sa.Float(), nullable=False, index=True),
        sa.Column("draining", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("capacity", sa.Integer(), nullable=False),
        sa.Column("running", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("sandboxes", sa.JSON(), nullable=False),
    )
    with op.batch_alter_table("runs") as runs:
        runs.add_column(sa.Column("replica_id", sa.String(80), nullable=True))
        runs.add_column(sa.Column("affinity", sa.String(80), nullable=True))
    op.create_index("ix_runs_state_replica", "runs", ["state", "replica_id"])


def downgrade() -> None:
    op.drop_index("ix_runs_state_replica", "runs")
    with op.batch_alter_table("runs") as runs:
        runs.drop_column("affinity")
        runs.drop_column("replica_id")
    op.drop_table("replicas")
