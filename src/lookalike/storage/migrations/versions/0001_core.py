"""Core schema: accounts, access keys, instances, images, change log.

Revision ID: 0001_core
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001_core"
down_revision = None
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "accounts",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(128), nullable=False, unique=True),
        sa.Column("is_admin", sa.Boolean, nullable=False),
        sa.Column("disabled", sa.Boolean, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "access_keys",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("account_id", sa.String(32), sa.ForeignKey("accounts.id"), nullable=False, index=True),
        sa.Column("secret_ciphertext", sa.LargeBinary, nullable=False),
        sa.Column("disabled", sa.Boolean, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "instances",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("account_id", sa.String(32), sa.ForeignKey("accounts.id"), nullable=False, index=True),
        sa.Column("name", sa.String(20), nullable=False),
        sa.Column("service_type", sa.Integer, nullable=False),
        sa.Column("capacity", sa.BigInteger, nullable=False),
        sa.Column("search_qps", sa.Integer, nullable=False),
        sa.Column("add_qps", sa.Integer, nullable=True),
        sa.Column("delete_qps", sa.Integer, nullable=True),
        sa.Column("update_qps", sa.Integer, nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
    )
    # A released instance frees its name, so names are unique only among the others.
    op.create_index(
        "uq_instances_live_name",
        "instances",
        ["name"],
        unique=True,
        sqlite_where=sa.text("status != 'released'"),
        postgresql_where=sa.text("status != 'released'"),
    )
    op.create_table(
        "images",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("instance_id", sa.String(32), sa.ForeignKey("instances.id"), nullable=False),
        sa.Column("product_id", sa.String(512), nullable=False),
        sa.Column("pic_name", sa.String(512), nullable=False),
        sa.Column("category_id", sa.Integer, nullable=False),
        *[
            sa.Column(n, sa.BigInteger, nullable=False)
            for n in ("int_attr", "int_attr2", "int_attr3", "int_attr4")
        ],
        *[
            sa.Column(n, sa.String(128), nullable=False)
            for n in ("str_attr", "str_attr2", "str_attr3", "str_attr4")
        ],
        sa.Column("custom_content", sa.Text, nullable=False),
        sa.Column("region", sa.String(64), nullable=False),
        sa.Column("embedding", sa.LargeBinary, nullable=False),
        sa.Column("model_id", sa.String(64), nullable=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("instance_id", "product_id", "pic_name", name="uq_images_key"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_images_instance_category", "images", ["instance_id", "category_id"])
    op.create_table(
        "changes",
        sa.Column("seq", BigId, primary_key=True, autoincrement=True),
        sa.Column("instance_id", sa.String(32), nullable=False),
        sa.Column("image_id", sa.BigInteger, nullable=False),
        sa.Column("op", sa.String(8), nullable=False),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_changes_instance_seq", "changes", ["instance_id", "seq"])


def downgrade() -> None:
    op.drop_table("changes")
    op.drop_index("ix_images_instance_category", table_name="images")
    op.drop_table("images")
    op.drop_table("instances")
    op.drop_table("access_keys")
    op.drop_table("accounts")
