"""Billing: private packages, subscriptions, orders, ledger, idempotency keys, trials, settings,
events, job leases; instances gain auto-renew settings.

Revision ID: 0002_billing
Revises: 0001_core
"""

import sqlalchemy as sa
from alembic import op

revision = "0002_billing"
down_revision = "0001_core"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("instances") as batch:
        batch.add_column(sa.Column("auto_renew", sa.Boolean, nullable=False, server_default=sa.false()))
        batch.add_column(sa.Column("auto_renew_unit", sa.String(8), nullable=True))
        batch.add_column(sa.Column("auto_renew_count", sa.Integer, nullable=True))
        batch.add_column(sa.Column("released_at", TS, nullable=True))
    op.create_table(
        "private_packages",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("account_id", sa.String(32), sa.ForeignKey("accounts.id"), nullable=False, index=True),
        sa.Column("capacity", sa.BigInteger, nullable=False),
        sa.Column("qps", sa.Integer, nullable=False),
        sa.Column("monthly", sa.BigInteger, nullable=False),
        sa.Column("yearly", sa.BigInteger, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_table(
        "subscriptions",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("instance_id", sa.String(32), sa.ForeignKey("instances.id"), nullable=False, index=True),
        sa.Column("order_id", sa.String(32), nullable=False),
        sa.Column("package_id", sa.String(64), nullable=False),
        sa.Column("capacity", sa.BigInteger, nullable=False),
        sa.Column("qps", sa.Integer, nullable=False),
        sa.Column("cycle_price", sa.BigInteger, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("cycle_start", TS, nullable=False),
        sa.Column("cycle_end", TS, nullable=False),
        sa.Column("period_unit", sa.String(8), nullable=False),
        sa.Column("period_count", sa.Integer, nullable=False),
        sa.Column("effective_from", TS, nullable=False),
        sa.Column("effective_to", TS, nullable=False),
    )
    op.create_table(
        "orders",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("account_id", sa.String(32), sa.ForeignKey("accounts.id"), nullable=False, index=True),
        sa.Column("instance_id", sa.String(32), nullable=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("receipt", sa.Text, nullable=False),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_table(
        "ledger",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("account_id", sa.String(32), sa.ForeignKey("accounts.id"), nullable=False, index=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("order_id", sa.String(32), nullable=True),
        sa.Column("reference", sa.String(128), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "idempotency_keys",
        sa.Column("account_id", sa.String(32), primary_key=True),
        sa.Column("key", sa.String(255), primary_key=True),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column("response", sa.Text, nullable=False),
        sa.Column("status", sa.Integer, nullable=False),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_table(
        "trial_claims",
        sa.Column("account_id", sa.String(32), sa.ForeignKey("accounts.id"), primary_key=True),
        sa.Column("instance_id", sa.String(32), nullable=False),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_table(
        "settings",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "events",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("account_id", sa.String(32), nullable=False),
        sa.Column("instance_id", sa.String(32), nullable=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("data", sa.Text, nullable=False),
        sa.Column("dedupe_key", sa.String(160), nullable=True, unique=True),
        sa.Column("created_at", TS, nullable=False),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_events_account", "events", ["account_id", "id"])
    op.create_table(
        "job_leases",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("holder", sa.String(64), nullable=False),
        sa.Column("lease_until", TS, nullable=False),
    )


def downgrade() -> None:
    for table in (
        "job_leases",
        "events",
        "settings",
        "trial_claims",
        "idempotency_keys",
        "ledger",
        "orders",
        "subscriptions",
        "private_packages",
    ):
        op.drop_table(table)
    with op.batch_alter_table("instances") as batch:
        for column in ("released_at", "auto_renew_count", "auto_renew_unit", "auto_renew"):
            batch.drop_column(column)
