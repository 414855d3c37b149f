"""Stored vectors shrink to the reduced space: 256-d float16 (512 B) instead of 1280-d float32 (5 KB).

Every picture's stored features are re-encoded through the packaged reduction (lookalike.vectors.reduction)
in bounded chunks, and its model id becomes "<model>+<reduction>". Vector indexes of the old format are
rebuilt from these rows on the next start. Also indexes images by (instance_id, id), the order in which a
rebuild streams an instance's rows.

Revision ID: 0006_reduced_vectors
Revises: 0005_console
"""

import numpy as np
import sqlalchemy as sa
from alembic import op

revision = "0006_reduced_vectors"
down_revision = "0005_console"
branch_labels = None
depends_on = None

_CHUNK = 2000


def upgrade() -> None:
    from lookalike.vectors import codec
    from lookalike.vectors.reduction import packaged

    reduction = packaged()
    op.create_index("ix_images_instance_id", "images", ["instance_id", "id"])
    conn = op.get_bind()
    images = sa.table(
        "images", sa.column("id", sa.BigInteger), sa.column("embedding", sa.LargeBinary),
        sa.column("model_id", sa.String),
    )
    old_bytes = reduction.dim_in * 4
    after = -1
    while True:
        rows = conn.execute(
            sa.select(images.c.id, images.c.embedding)
            .where(images.c.id > after, images.c.model_id == reduction.source_model)
            .order_by(images.c.id)
            .limit(_CHUNK)
        ).all()
        if not rows:
            break
        after = int(rows[-1].id)
        keep = [r for r in rows if len(r.embedding) == old_bytes]
        if not keep:
            continue
        features = np.stack([np.frombuffer(bytes(r.embedding), dtype="<f4") for r in keep])
        reduced = reduction.reduce(features)
        conn.execute(
            images.update().where(images.c.id == sa.bindparam("image_id")),
            [
                {"image_id": int(r.id), "embedding": codec.encode(v), "model_id": reduction.model_id()}
                for r, v in zip(keep, reduced, strict=True)
            ],
        )


def downgrade() -> None:
    raise NotImplementedError("reduced vectors cannot be expanded back to the model's features")
