"""A second stored vector per picture: the whole picture's, when the indexed one is of a part of it.

Copies often keep the whole picture (a frame, a banner around it) where the subject crop of the original
and of the copy differ; a search re-scores its shortlist against both vectors (lookalike.vision.views).
Nullable: pictures stored before, and pictures whose indexed view is the whole picture, have none.

Revision ID: 0008_aux_embedding
Revises: 0007_image_count
"""

import sqlalchemy as sa
from alembic import op

revision = "0008_aux_embedding"
down_revision = "0007_image_count"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("images", sa.Column("aux_embedding", sa.LargeBinary, nullable=True))


def downgrade() -> None:
    # Plain ALTER (SQLite >= 3.35 has DROP COLUMN), as in 0007.
    op.execute("ALTER TABLE images DROP COLUMN aux_embedding")
