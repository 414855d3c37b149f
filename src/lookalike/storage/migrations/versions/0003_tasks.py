"""Export (DumpMeta) and batch (IncreaseInstance) tasks, and the failed lines of batch tasks.

Revision ID: 0003_tasks
Revises: 0002_billing
"""

import sqlalchemy as sa
from alembic import op

revision = "0003_tasks"
down_revision = "0002_billing"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "tasks",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("account_id", sa.String(32), sa.ForeignKey("accounts.id"), nullable=False),
        sa.Column("instance_id", sa.String(32), sa.ForeignKey("instances.id"), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("code", sa.String(64), nullable=False, server_default=""),
        sa.Column("msg", sa.Text, nullable=False, server_default=""),
        sa.Column("bucket_name", sa.String(128), nullable=True),
        sa.Column("path", sa.Text, nullable=True),
        sa.Column("callback_address", sa.Text, nullable=True),
        sa.Column("progress", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("succeeded", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("failed", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("lease_holder", sa.String(64), nullable=True),
        sa.Column("lease_until", TS, nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_tasks_instance_kind", "tasks", ["instance_id", "kind", "id"])
    op.create_index(
        "uq_tasks_running",
        "tasks",
        ["instance_id", "kind"],
        unique=True,
        sqlite_where=sa.text("status = 'PROCESSING'"),
        postgresql_where=sa.text("status = 'PROCESSING'"),
    )
    op.create_table(
        "task_errors",
        sa.Column("task_id", sa.BigInteger, sa.ForeignKey("tasks.id"), primary_key=True),
        sa.Column("line_no", sa.BigInteger, primary_key=True),
        sa.Column("operation", sa.String(16), nullable=False),
        sa.Column("product_id", sa.Text, nullable=False),
        sa.Column("pic_name", sa.Text, nullable=False),
        sa.Column("code", sa.String(64), nullable=False),
        sa.Column("message", sa.Text, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("task_errors")
    op.drop_index("uq_tasks_running", table_name="tasks")
    op.drop_index("ix_tasks_instance_kind", table_name="tasks")
    op.drop_table("tasks")
