"""SQL schema (SQLAlchemy Core). Alembic migrations create it; this module describes it for queries."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

# BigInteger ids are INTEGER on SQLite, so they alias the rowid (auto-increment works on both engines).
BigId = BigInteger().with_variant(Integer(), "sqlite")

accounts = Table(
    "accounts",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("name", String(128), nullable=False, unique=True),
    Column("is_admin", Boolean, nullable=False, default=False),
    Column("disabled", Boolean, nullable=False, default=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

access_keys = Table(
    "access_keys",
    metadata,
    Column("id", String(64), primary_key=True),  # the AccessKeyId, public
    Column("account_id", String(32), ForeignKey("accounts.id"), nullable=False, index=True),
    Column("secret_ciphertext", LargeBinary, nullable=False),  # Fernet token under the server key
    Column("disabled", Boolean, nullable=False, default=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

instances = Table(
    "instances",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("account_id", String(32), ForeignKey("accounts.id"), nullable=False, index=True),
    Column("name", String(20), nullable=False, unique=True),
    Column("service_type", Integer, nullable=False),  # 0 product, 1 generic (Alibaba numbering)
    Column("capacity", BigInteger, nullable=False),
    Column("search_qps", Integer, nullable=False),
    # Per-operation overrides; NULL = the documented default for the package.
    Column("add_qps", Integer, nullable=True),
    Column("delete_qps", Integer, nullable=True),
    Column("update_qps", Integer, nullable=True),
    Column("status", String(16), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=True),
)

images = Table(
    "images",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("instance_id", String(32), ForeignKey("instances.id"), nullable=False),
    Column("product_id", String(512), nullable=False),
    Column("pic_name", String(512), nullable=False),
    Column("category_id", Integer, nullable=False),
    Column("int_attr", BigInteger, nullable=False, default=0),
    Column("int_attr2", BigInteger, nullable=False, default=0),
    Column("int_attr3", BigInteger, nullable=False, default=0),
    Column("int_attr4", BigInteger, nullable=False, default=0),
    Column("str_attr", String(128), nullable=False, default=""),
    Column("str_attr2", String(128), nullable=False, default=""),
    Column("str_attr3", String(128), nullable=False, default=""),
    Column("str_attr4", String(128), nullable=False, default=""),
    Column("custom_content", Text, nullable=False, default=""),
    Column("region", String(64), nullable=False),
    Column("embedding", LargeBinary, nullable=False),  # float32 little-endian, L2-normalized
    Column("model_id", String(64), nullable=False),
    Column("seq", BigInteger, nullable=False),  # change sequence of the last write
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("instance_id", "product_id", "pic_name", name="uq_images_key"),
    Index("ix_images_instance_category", "instance_id", "category_id"),
    sqlite_autoincrement=True,  # a deleted picture's id is never reused, so a stale index hit cannot alias
)

# Append-only log of vector-affecting writes; the derived index replays it past its applied seq.
changes = Table(
    "changes",
    metadata,
    Column("seq", BigId, primary_key=True, autoincrement=True),
    Column("instance_id", String(32), nullable=False),
    Column("image_id", BigInteger, nullable=False),
    Column("op", String(8), nullable=False),  # "upsert" | "delete"
    Index("ix_changes_instance_seq", "instance_id", "seq"),
    sqlite_autoincrement=True,  # never reuse a seq after the newest row is deleted
)

INT_ATTR_COLUMNS = ("int_attr", "int_attr2", "int_attr3", "int_attr4")
STR_ATTR_COLUMNS = ("str_attr", "str_attr2", "str_attr3", "str_attr4")
