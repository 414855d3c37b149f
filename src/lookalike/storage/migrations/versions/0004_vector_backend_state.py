"""Shared vector backends: the applied change-log watermark per instance and backend.

Revision ID: 0004_vector_backend_state
Revises: 0003_tasks
"""

import sqlalchemy as sa
from alembic import op

revision = "0004_vector_backend_state"
down_revision = "0003_tasks"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "vector_backend_state",
        sa.Column("instance_id", sa.String(32), primary_key=True),
        sa.Column("backend", sa.String(64), primary_key=True),
        sa.Column("applied_seq", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("vector_backend_state")
