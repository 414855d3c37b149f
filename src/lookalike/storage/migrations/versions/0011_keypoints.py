"""Local features per picture, for the geometric check of a search's first hits (issue 13).

A separate table, as thumbnails are: ~2 KB a picture would bloat every scan of `images`. Pictures stored
before have no row and are searched as before.

Revision ID: 0011_keypoints
Revises: 0010_duplicate_reports
"""

import sqlalchemy as sa
from alembic import op

revision = "0011_keypoints"
down_revision = "0010_duplicate_reports"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "keypoints",
        sa.Column("image_id", sa.BigInteger, primary_key=True),
        sa.Column("instance_id", sa.String(32), nullable=False),
        sa.Column("data", sa.LargeBinary, nullable=False),
    )
    op.create_index("ix_keypoints_instance_id", "keypoints", ["instance_id"])


def downgrade() -> None:
    op.drop_table("keypoints")
