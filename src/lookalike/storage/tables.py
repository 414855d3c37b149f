"""SQL schema (SQLAlchemy Core). Alembic migrations create it; this module describes it for queries."""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.types import TypeEngine

from lookalike.domain.attributes import INT_SLOTS, MAX_STR_ATTR, SLOTS, STR_SLOTS, Slot

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
    Column("name", String(20), nullable=False),
    Column("service_type", Integer, nullable=False),  # 0 product, 1 generic (Alibaba numbering)
    Column("capacity", BigInteger, nullable=False),
    Column("search_qps", Integer, nullable=False),
    # Per-operation overrides; NULL = the documented default for the package.
    Column("add_qps", Integer, nullable=True),
    Column("delete_qps", Integer, nullable=True),
    Column("update_qps", Integer, nullable=True),
    Column("status", String(16), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=True),  # paid until (end of the last cycle)
    Column("auto_renew", Boolean, nullable=False, default=False),
    Column("auto_renew_unit", String(8), nullable=True),
    Column("auto_renew_count", Integer, nullable=True),
    Column("released_at", DateTime(timezone=True), nullable=True),
    # Pictures stored, kept in step by every write of `images` (lookalike.storage.images_repo): the capacity
    # check and the usage figure read one row instead of counting an instance's millions of rows.
    Column("image_count", BigInteger, nullable=False, default=0, server_default="0"),
    Index(
        "uq_instances_live_name",
        "name",
        unique=True,
        sqlite_where=text("status != 'released'"),
        postgresql_where=text("status != 'released'"),
    ),
)


def _attribute_column(slot: Slot) -> Column[Any]:
    """An attribute slot's column (lookalike.domain.attributes), as migration 0001 created it."""
    kind: TypeEngine[Any] = BigInteger() if slot.kind == "int" else String(MAX_STR_ATTR)
    return Column(slot.name, kind, nullable=False, default=slot.default)


images = Table(
    "images",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("instance_id", String(32), ForeignKey("instances.id"), nullable=False),
    Column("product_id", String(512), nullable=False),
    Column("pic_name", String(512), nullable=False),
    Column("category_id", Integer, nullable=False),
    *(_attribute_column(slot) for slot in SLOTS),
    Column("custom_content", Text, nullable=False, default=""),
    # The distinct words of ProductId, PicName and CustomContent (lookalike.domain.words), which the
    # full-text index holds: SQLite's FTS5 table images_fts, PostgreSQL's GIN index (migration 0009).
    Column("search_text", Text, nullable=False, default=""),
    Column("region", String(64), nullable=False),
    # The reduced vector (lookalike.vectors): 256 float16 values, little-endian, L2-normalized.
    Column("embedding", LargeBinary, nullable=False),
    # The whole picture's vector when `embedding` is of a part of it (the subject crop or a Region); same
    # space and encoding; NULL when both are the same picture. Read only to re-score a search's shortlist.
    Column("aux_embedding", LargeBinary, nullable=True),
    Column("model_id", String(64), nullable=False),
    Column("seq", BigInteger, nullable=False),  # change sequence of the last write
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("instance_id", "product_id", "pic_name", name="uq_images_key"),
    Index("ix_images_instance_category", "instance_id", "category_id"),
    Index("ix_images_instance_id", "instance_id", "id"),  # an index rebuild streams an instance in id order
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

INT_ATTR_COLUMNS = tuple(slot.name for slot in INT_SLOTS)
STR_ATTR_COLUMNS = tuple(slot.name for slot in STR_SLOTS)

# --- billing ---

# Private quotations: packages offered to one account only (the public ones live in the catalogue file).
private_packages = Table(
    "private_packages",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("account_id", String(32), ForeignKey("accounts.id"), nullable=False, index=True),
    Column("capacity", BigInteger, nullable=False),
    Column("qps", Integer, nullable=False),
    Column("monthly", BigInteger, nullable=False),
    Column("yearly", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

# One row per package an instance held over part of a billing cycle. A change closes the current row and
# opens another in the same cycle; a renewal opens a new cycle. Capacity and QPS are copied in, so
# replacing the catalogue file never changes what a tenant already paid for.
subscriptions = Table(
    "subscriptions",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("instance_id", String(32), ForeignKey("instances.id"), nullable=False, index=True),
    Column("order_id", String(32), nullable=False),
    Column("package_id", String(64), nullable=False),
    Column("capacity", BigInteger, nullable=False),
    Column("qps", Integer, nullable=False),
    Column("cycle_price", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("cycle_start", DateTime(timezone=True), nullable=False),
    Column("cycle_end", DateTime(timezone=True), nullable=False),
    Column("period_unit", String(8), nullable=False),
    Column("period_count", Integer, nullable=False),
    Column("effective_from", DateTime(timezone=True), nullable=False),
    Column("effective_to", DateTime(timezone=True), nullable=False),
)

orders = Table(
    "orders",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("account_id", String(32), ForeignKey("accounts.id"), nullable=False, index=True),
    Column("instance_id", String(32), nullable=True),
    Column("kind", String(16), nullable=False),  # buy | trial | renew | change | topup | grant
    Column("amount", BigInteger, nullable=False),  # signed minor units: + charged, - refunded
    Column("currency", String(3), nullable=False),
    Column("receipt", Text, nullable=False),  # JSON: line items
    Column("created_at", DateTime(timezone=True), nullable=False),
)

# Append-only: the balance is the sum of an account's entries; rows are never updated or deleted.
ledger = Table(
    "ledger",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("account_id", String(32), ForeignKey("accounts.id"), nullable=False, index=True),
    Column("kind", String(16), nullable=False),  # topup | charge | refund | trial
    Column("amount", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("order_id", String(32), nullable=True),
    Column("reference", String(128), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    sqlite_autoincrement=True,
)

idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("account_id", String(32), primary_key=True),
    Column("key", String(255), primary_key=True),
    Column("request_hash", String(64), nullable=False),
    Column("response", Text, nullable=False),
    Column("status", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

trial_claims = Table(
    "trial_claims",
    metadata,
    Column("account_id", String(32), ForeignKey("accounts.id"), primary_key=True),
    Column("instance_id", String(32), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

# Operator settings that must be shared by every process (trial seats, clock offset of a demo server).
settings_table = Table(
    "settings",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", BigInteger, nullable=False),
)

events = Table(
    "events",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("account_id", String(32), nullable=False),
    Column("instance_id", String(32), nullable=True),
    Column("kind", String(32), nullable=False),
    Column("data", Text, nullable=False),
    Column("dedupe_key", String(160), nullable=True, unique=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Index("ix_events_account", "account_id", "id"),
    sqlite_autoincrement=True,
)

# Leases so that only one process runs a periodic job at a time.
job_leases = Table(
    "job_leases",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("holder", String(64), nullable=False),
    Column("lease_until", DateTime(timezone=True), nullable=False),
)

# --- export (DumpMeta) and batch (IncreaseInstance) tasks ---

# One row per task. Ids never repeat (signed download links name them). At most one PROCESSING task of a
# kind per instance, enforced by a partial unique index. `progress` is the last increment.meta line whose
# effect is committed; a restarted worker resumes after it. The lease keeps two processes off one task.
tasks = Table(
    "tasks",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("kind", String(16), nullable=False),  # "dump" | "increase" | "duplicates"
    Column("account_id", String(32), ForeignKey("accounts.id"), nullable=False),
    Column("instance_id", String(32), ForeignKey("instances.id"), nullable=False),
    Column("status", String(16), nullable=False),  # PROCESSING | SUCCESS | FAIL
    Column("code", String(64), nullable=False, default=""),
    Column("msg", Text, nullable=False, default=""),
    Column("bucket_name", String(128), nullable=True),
    Column("path", Text, nullable=True),
    Column("callback_address", Text, nullable=True),
    # A task's own settings as a JSON object (a duplicate report's threshold); NULL for the others.
    Column("params", Text, nullable=True),
    Column("progress", BigInteger, nullable=False, default=0),
    Column("succeeded", BigInteger, nullable=False, default=0),
    Column("failed", BigInteger, nullable=False, default=0),
    Column("lease_holder", String(64), nullable=True),
    Column("lease_until", DateTime(timezone=True), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Index("ix_tasks_instance_kind", "instance_id", "kind", "id"),
    Index(
        "uq_tasks_running",
        "instance_id",
        "kind",
        unique=True,
        sqlite_where=text("status = 'PROCESSING'"),
        postgresql_where=text("status = 'PROCESSING'"),
    ),
    sqlite_autoincrement=True,
)

# Failed increment.meta lines, written in the same transaction as the task's progress (so a resumed task
# never records a line twice); the error file behind ErrorUrl is rendered from them.
task_errors = Table(
    "task_errors",
    metadata,
    Column("task_id", BigInteger, ForeignKey("tasks.id"), primary_key=True),
    Column("line_no", BigInteger, primary_key=True),
    Column("operation", String(16), nullable=False),
    Column("product_id", Text, nullable=False),
    Column("pic_name", Text, nullable=False),
    Column("code", String(64), nullable=False),
    Column("message", Text, nullable=False),
)

# --- duplicate reports (lookalike.service.duplicates) ---

# The pairs a report's scan found at its threshold, committed with the scan's progress (tasks.progress is
# the last image id scanned), so a resumed scan neither loses nor repeats one. Ids only: a pair whose
# picture is deleted since drops out when the groups are read.
duplicate_pairs = Table(
    "duplicate_pairs",
    metadata,
    Column("task_id", BigInteger, ForeignKey("tasks.id"), primary_key=True),
    Column("first_id", BigInteger, primary_key=True),  # the lower image id
    Column("second_id", BigInteger, primary_key=True),
    Column("score", Float, nullable=False),
)

# The groups (connected components of the pairs), written once when the scan ends; group_no 1 is the
# biggest. Position 0 is the group's centre (the suggested keeper); each row's score is with the centre.
duplicate_members = Table(
    "duplicate_members",
    metadata,
    Column("task_id", BigInteger, ForeignKey("tasks.id"), primary_key=True),
    Column("group_no", Integer, primary_key=True),
    Column("position", Integer, primary_key=True),
    Column("image_id", BigInteger, nullable=False),
    Column("score", Float, nullable=False),
)

# --- shared vector backends ---

# How far a shared vector backend (Milvus) has applied the change log of an instance. It lives here, not in
# the backend, so that every replica reads one watermark and moves it with one compare-and-set UPDATE (only
# forward), in the same database whose log it describes. Per-process backends (faiss) keep theirs on disk.
vector_backend_state = Table(
    "vector_backend_state",
    metadata,
    Column("instance_id", String(32), primary_key=True),
    Column("backend", String(64), primary_key=True),  # backend + location, e.g. "milvus:lookalike_d1280"
    Column("applied_seq", BigInteger, nullable=False),
)

# --- web console (/console) ---

# Console sign-in password of an account (scrypt; see service/passwords.py). No row: no console sign-in.
console_passwords = Table(
    "console_passwords",
    metadata,
    Column("account_id", String(32), ForeignKey("accounts.id"), primary_key=True),
    Column("password_hash", String(256), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

# Signed-in browser sessions. Only the SHA-256 of the cookie's token is stored, so a leaked database does not
# hand out live sessions. `flash` is a one-shot notice shown on the next page (post/redirect/get).
console_sessions = Table(
    "console_sessions",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("account_id", String(32), ForeignKey("accounts.id"), nullable=False, index=True),
    Column("csrf_token", String(64), nullable=False),
    Column("flash", Text, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
)

# A small JPEG of each added picture, for the console's result grids (setting `thumbnails`). Keyed by the
# images row; written in the same transaction as the picture and deleted with it.
thumbnails = Table(
    "thumbnails",
    metadata,
    Column("image_id", BigInteger, primary_key=True),
    Column("instance_id", String(32), nullable=False, index=True),
    Column("data", LargeBinary, nullable=False),
)

# Each picture's local features (lookalike.domain.keypoint_codec, ~2 KB), for the geometric check of a
# search's first hits (setting `copy_verification`). Keyed by the images row; written in the same transaction
# as the picture and deleted with it. Pictures stored before the check existed have none.
keypoints = Table(
    "keypoints",
    metadata,
    Column("image_id", BigInteger, primary_key=True),
    Column("instance_id", String(32), nullable=False, index=True),
    Column("data", LargeBinary, nullable=False),
)

# Search requests per instance and UTC minute, for the console's "QPS used against the limit" chart.
# Each process adds its own counts (additive upserts); peak_per_second is the busiest second one process saw.
search_usage = Table(
    "search_usage",
    metadata,
    Column("instance_id", String(32), primary_key=True),
    Column("minute", DateTime(timezone=True), primary_key=True),
    Column("searches", Integer, nullable=False),
    Column("throttled", Integer, nullable=False),
    Column("peak_per_second", Integer, nullable=False),
)
