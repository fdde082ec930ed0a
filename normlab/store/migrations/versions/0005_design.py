"""episode.variant and episode.trial: where an episode sits in its scenario's design (the
matrix values of its variant, its trial); NULL for plain scenarios and older runs.

Revision ID: 0005_design
Revises: 0004_failed_episodes
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_design"
down_revision = "0004_failed_episodes"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("episode", sa.Column("variant", sa.JSON(), nullable=True))
    op.add_column("episode", sa.Column("trial", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("episode") as batch:
        batch.drop_column("trial")
        batch.drop_column("variant")
