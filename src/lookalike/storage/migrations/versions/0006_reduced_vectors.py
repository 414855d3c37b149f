"""Index images by (instance_id, id): the order in which a vector-index rebuild streams an instance's rows.

Stored vectors also changed form (the reduced 256-d float16 of lookalike.vectors); rows still holding the
model's raw features are re-encoded at start-up by lookalike.vectors.reencode, not here, so the schema
migration needs no model code.

Revision ID: 0006_reduced_vectors
Revises: 0005_console
"""

from alembic import op

revision = "0006_reduced_vectors"
down_revision = "0005_console"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_images_instance_id", "images", ["instance_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_images_instance_id", "images")
