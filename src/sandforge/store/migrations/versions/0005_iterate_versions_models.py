"""Iterating: what made each version (run, manual edit, restore) and a model per project.

Revision ID: 0005_iterate
Revises: 0004_ship
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_iterate"
down_revision = "0004_ship"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("versions") as batch:
        batch.add_column(sa.Column("kind", sa.String(20), nullable=False, server_default="run"))
    with op.batch_alter_table("projects") as batch:
        batch.add_column(sa.Column("model", sa.String(200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("projects") as batch:
        batch.drop_column("model")
    with op.batch_alter_table("versions") as batch:
        batch.drop_column("kind")
