"""Full-text search over what tenants wrote about their pictures (search by words).

images.search_text holds the distinct words of ProductId, PicName and CustomContent, made by
lookalike.domain.words (so both databases match alike), backfilled here. SQLite indexes it in an FTS5 table
with external content (images_fts, kept in step by triggers); PostgreSQL in a GIN index on
to_tsvector('simple', search_text) (the 'simple' configuration keeps the words as they are).

Revision ID: 0009_search_text
Revises: 0008_aux_embedding
"""

import sqlalchemy as sa
from alembic import op

from lookalike.domain.words import search_text

revision = "0009_search_text"
down_revision = "0008_aux_embedding"
branch_labels = None
depends_on = None

CHUNK = 2_000


def upgrade() -> None:
    op.add_column("images", sa.Column("search_text", sa.Text, nullable=False, server_default=""))
    conn = op.get_bind()
    after = -1
    while True:
        rows = conn.execute(
            sa.text(
                "SELECT id, product_id, pic_name, custom_content FROM images WHERE id > :after"
                " ORDER BY id LIMIT :limit"
            ),
            {"after": after, "limit": CHUNK},
        ).all()
        if not rows:
            break
        after = rows[-1].id
        conn.execute(
            sa.text("UPDATE images SET search_text = :text WHERE id = :id"),
            [
                {"id": r.id, "text": search_text([r.product_id, r.pic_name, r.custom_content])}
                for r in rows
            ],
        )
    if conn.dialect.name == "sqlite":
        op.execute(
            "CREATE VIRTUAL TABLE images_fts USING fts5("
            "search_text, content='images', content_rowid='id', tokenize='unicode61 remove_diacritics 2')"
        )
        op.execute(
            "CREATE TRIGGER images_fts_insert AFTER INSERT ON images BEGIN"
            " INSERT INTO images_fts(rowid, search_text) VALUES (new.id, new.search_text); END"
        )
        op.execute(
            "CREATE TRIGGER images_fts_delete AFTER DELETE ON images BEGIN"
            " INSERT INTO images_fts(images_fts, rowid, search_text)"
            " VALUES ('delete', old.id, old.search_text); END"
        )
        op.execute(
            "CREATE TRIGGER images_fts_update AFTER UPDATE OF search_text ON images BEGIN"
            " INSERT INTO images_fts(images_fts, rowid, search_text)"
            " VALUES ('delete', old.id, old.search_text);"
            " INSERT INTO images_fts(rowid, search_text) VALUES (new.id, new.search_text); END"
        )
        op.execute("INSERT INTO images_fts(images_fts) VALUES ('rebuild')")
    else:
        op.execute(
            "CREATE INDEX ix_images_search_text ON images USING gin (to_tsvector('simple', search_text))"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for trigger in ("insert", "delete", "update"):
            op.execute(f"DROP TRIGGER IF EXISTS images_fts_{trigger}")
        op.execute("DROP TABLE IF EXISTS images_fts")
    else:
        op.execute("DROP INDEX IF EXISTS ix_images_search_text")
    op.execute("ALTER TABLE images DROP COLUMN search_text")
