"""Duplicate reports: a task's parameters, the pairs its scan found and the groups it made of them.

tasks.params holds a task's own settings as JSON (a report's threshold). duplicate_pairs is written with the
scan's progress; duplicate_members once, when the scan ends (lookalike.service.duplicates).

Revision ID: 0010_duplicate_reports
Revises: 0009_search_text
"""

import sqlalchemy as sa
from alembic import op

revision = "0010_duplicate_reports"
down_revision = "0009_search_text"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("tasks", sa.Column("params", sa.Text, nullable=True))
    op.create_table(
        "duplicate_pairs",
        sa.Column("task_id", sa.BigInteger, sa.ForeignKey("tasks.id"), primary_key=True),
        sa.Column("first_id", sa.BigInteger, primary_key=True),
        sa.Column("second_id", sa.BigInteger, primary_key=True),
        sa.Column("score", sa.Float, nullable=False),
    )
    op.create_table(
        "duplicate_members",
        sa.Column("task_id", sa.BigInteger, sa.ForeignKey("tasks.id"), primary_key=True),
        sa.Column("group_no", sa.Integer, primary_key=True),
        sa.Column("position", sa.Integer, primary_key=True),
        sa.Column("image_id", sa.BigInteger, nullable=False),
        sa.Column("score", sa.Float, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("duplicate_members")
    op.drop_table("duplicate_pairs")
    op.execute("ALTER TABLE tasks DROP COLUMN params")
