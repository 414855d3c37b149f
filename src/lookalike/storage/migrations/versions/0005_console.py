"""Web console: passwords, sessions, thumbnails, search usage per minute.

Revision ID: 0005_console
Revises: 0004_vector_backend_state
"""

import sqlalchemy as sa
from alembic import op

revision = "0005_console"
down_revision = "0004_vector_backend_state"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "console_passwords",
        sa.Column("account_id", sa.String(32), sa.ForeignKey("accounts.id"), primary_key=True),
        sa.Column("password_hash", sa.String(256), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "console_sessions",
        sa.Column("token_hash", sa.String(64), primary_key=True),
        sa.Column("account_id", sa.String(32), sa.ForeignKey("accounts.id"), nullable=False),
        sa.Column("csrf_token", sa.String(64), nullable=False),
        sa.Column("flash", sa.Text, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_console_sessions_account_id", "console_sessions", ["account_id"])
    op.create_table(
        "thumbnails",
        sa.Column("image_id", sa.BigInteger, primary_key=True),
        sa.Column("instance_id", sa.String(32), nullable=False),
        sa.Column("data", sa.LargeBinary, nullable=False),
    )
    op.create_index("ix_thumbnails_instance_id", "thumbnails", ["instance_id"])
    op.create_table(
        "search_usage",
        sa.Column("instance_id", sa.String(32), primary_key=True),
        sa.Column("minute", sa.DateTime(timezone=True), primary_key=True),
        sa.Column("searches", sa.Integer, nullable=False),
        sa.Column("throttled", sa.Integer, nullable=False),
        sa.Column("peak_per_second", sa.Integer, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("search_usage")
    op.drop_table("thumbnails")
    op.drop_table("console_sessions")
    op.drop_table("console_passwords")
