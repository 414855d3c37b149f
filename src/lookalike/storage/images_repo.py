"""Image records and the change log: the source of truth the vector index is derived from."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    and_,
    bindparam,
    delete,
    func,
    insert,
    select,
    text,
    tuple_,
    update,
)

from lookalike.domain import vector_codec as codec
from lookalike.domain.errors import INSTANCE_OVER_QUOTA, LookalikeError
from lookalike.domain.filters import Node
from lookalike.domain.models import Attributes, AttributeUpdate, ImageRecord
from lookalike.domain.words import coverage, search_text
from lookalike.storage.db import write_transaction
from lookalike.storage.filter_sql import compile_filter
from lookalike.storage.sqltime import as_utc
from lookalike.storage.tables import (
    INT_ATTR_COLUMNS,
    STR_ATTR_COLUMNS,
    changes,
    duplicate_members,
    duplicate_pairs,
    images,
    instances,
    keypoints,
    tasks,
    thumbnails,
)

FILTER_COLUMNS: dict[str, ColumnElement[Any]] = {
    name: images.c[name] for name in (*INT_ATTR_COLUMNS, *STR_ATTR_COLUMNS)
}

# What a filtering backend stores next to each vector: the category and the eight filter attributes.
SCALAR_FIELDS = ("category_id", *INT_ATTR_COLUMNS, *STR_ATTR_COLUMNS)

_RECORD_COLUMNS = [c for c in images.c if c.name not in ("embedding", "aux_embedding", "search_text")]


def _record(row: Any) -> ImageRecord:
    return ImageRecord(
        id=int(row.id),
        instance_id=row.instance_id,
        product_id=row.product_id,
        pic_name=row.pic_name,
        category_id=int(row.category_id),
        attributes=Attributes.from_fields(row._mapping),
        custom_content=row.custom_content,
        region=row.region,
        created_at=as_utc(row.created_at),
        updated_at=as_utc(row.updated_at),
    )


def vector_to_blob(vector: np.ndarray) -> bytes:
    """A reduced vector as stored in SQL (float16, see lookalike.domain.vector_codec)."""
    return codec.encode(vector)


def _views(embedding: bytes, aux: bytes | None) -> np.ndarray:
    vector = blob_to_vector(embedding)
    return vector[None, :] if aux is None else np.stack([vector, blob_to_vector(aux)])


def blob_to_vector(blob: bytes) -> np.ndarray:
    return codec.decode(bytes(blob), len(blob) // codec.STORED_DTYPE.itemsize)


# Rows per streamed read of vectors: bounds a catch-up's memory (~1 MB of float16 at 256-d) at any size.
STREAM_CHUNK = 2_000


@dataclass(frozen=True)
class NewImage:
    product_id: str
    pic_name: str
    category_id: int
    attributes: Attributes
    custom_content: str
    region: str
    embedding: np.ndarray
    model_id: str
    # The whole picture's vector when `embedding` is of a part of it (tables.images.aux_embedding).
    aux_embedding: np.ndarray | None = None


@dataclass(frozen=True)
class NewPicture:
    """A picture with what is written next to it: its thumbnail (JPEG) and local features
    (lookalike.domain.keypoint_codec); None writes none (and drops an overwritten picture's old one)."""

    image: NewImage
    thumbnail: bytes | None = None
    local_features: bytes | None = None


@dataclass(frozen=True)
class WriteResult:
    image_id: int
    seq: int
    created: bool  # False when an existing (ProductId, PicName) was overwritten


@dataclass(frozen=True)
class DeleteResult:
    image_ids: list[int]
    pic_names: list[str]
    seq: int  # 0 when nothing was deleted


@dataclass(frozen=True)
class ChangeBatch:
    upsert_ids: np.ndarray
    upsert_vectors: np.ndarray
    delete_ids: np.ndarray
    last_seq: int
    # With changes_since(..., with_attributes=True): per upserted id (same order), category_id and the eight
    # filter attributes, for backends that filter inside the index (Milvus).
    upsert_scalars: list[dict[str, int | str]] | None = None


def _owned_by_id(
    conn: Connection,
    key: ColumnElement[Any],
    owner: ColumnElement[Any],
    instance_id: str,
    ids: list[int],
    columns: Sequence[Any],
) -> dict[int, Any]:
    """id -> row (``columns``) of the rows with these ids that belong to the instance, looked up by primary
    key only and the owner checked on the row (with instance_id in the WHERE clause SQLite walks the
    instance's index instead), 900 ids a statement (SQLite's bound-parameter limit)."""
    found: dict[int, Any] = {}
    for start in range(0, len(ids), 900):
        chunk = ids[start : start + 900]
        for row in conn.execute(
            select(key.label("key_"), owner.label("owner_"), *columns).where(key.in_(chunk))
        ):
            if row.owner_ == instance_id:
                found[int(row.key_)] = row
    return found


def purge_instance_rows(conn: Connection, instance_id: str) -> None:
    """Delete an instance's pictures, thumbnails, local features and change log inside the caller's write
    transaction."""
    conn.execute(delete(images).where(images.c.instance_id == instance_id))
    conn.execute(delete(changes).where(changes.c.instance_id == instance_id))
    conn.execute(delete(thumbnails).where(thumbnails.c.instance_id == instance_id))
    conn.execute(delete(keypoints).where(keypoints.c.instance_id == instance_id))
    reports = select(tasks.c.id).where(tasks.c.instance_id == instance_id).scalar_subquery()
    conn.execute(delete(duplicate_members).where(duplicate_members.c.task_id.in_(reports)))
    conn.execute(delete(duplicate_pairs).where(duplicate_pairs.c.task_id.in_(reports)))
    conn.execute(update(instances).where(instances.c.id == instance_id).values(image_count=0))


class ImageRepository:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    @staticmethod
    def _lock_instance(conn: Connection, instance_id: str) -> int:
        """Lock the instance row and return its picture count.

        PostgreSQL: serializes an instance's writers across replicas, so its change seqs commit in order and
        a catch-up that has read up to seq N can never later find a smaller seq committing (SQLite has one
        writer at a time anyway, taken up front by write_transaction)."""
        count = conn.execute(
            select(instances.c.image_count).where(instances.c.id == instance_id).with_for_update()
        ).scalar_one_or_none()
        return int(count or 0)

    @staticmethod
    def _add_to_count(conn: Connection, instance_id: str, delta: int) -> None:
        conn.execute(
            update(instances)
            .where(instances.c.id == instance_id)
            .values(image_count=instances.c.image_count + delta)
        )

    def _log_change(self, conn: Connection, instance_id: str, image_id: int, op: str) -> int:
        result = conn.execute(insert(changes).values(instance_id=instance_id, image_id=image_id, op=op))
        seq = result.inserted_primary_key
        assert seq is not None
        return int(seq[0])

    @staticmethod
    def _values(image: NewImage, now: datetime) -> dict[str, Any]:
        """The columns an add writes on insert and on overwrite alike."""
        return dict(
            category_id=image.category_id,
            custom_content=image.custom_content,
            search_text=search_text([image.product_id, image.pic_name, image.custom_content]),
            region=image.region,
            embedding=vector_to_blob(image.embedding),
            aux_embedding=None if image.aux_embedding is None else vector_to_blob(image.aux_embedding),
            model_id=image.model_id,
            updated_at=now,
            **image.attributes.as_filter_fields(),
        )

    @staticmethod
    def _new_row(instance_id: str, image: NewImage, now: datetime) -> dict[str, Any]:
        """An inserted row: the key, creation time and a placeholder seq (set once the change is logged)."""
        return dict(
            instance_id=instance_id,
            product_id=image.product_id,
            pic_name=image.pic_name,
            created_at=now,
            seq=0,
            **ImageRepository._values(image, now),
        )

    @staticmethod
    def _over_quota(capacity: int) -> LookalikeError:
        return LookalikeError(
            INSTANCE_OVER_QUOTA,
            f"The number of items exceeds the limit: the instance holds {capacity} pictures.",
        )

    @staticmethod
    def _write_extras(
        conn: Connection, instance_id: str, written: Sequence[tuple[int, bool, NewPicture]]
    ) -> None:
        """Replace the thumbnails and local features of written pictures (image id, created, picture): an
        overwritten picture never keeps its predecessor's."""
        replaced = [image_id for image_id, created, _ in written if not created]
        for start in range(0, len(replaced), 900):
            chunk = replaced[start : start + 900]
            conn.execute(delete(thumbnails).where(thumbnails.c.image_id.in_(chunk)))
            conn.execute(delete(keypoints).where(keypoints.c.image_id.in_(chunk)))
        thumbs = [
            dict(image_id=i, instance_id=instance_id, data=p.thumbnail)
            for i, _, p in written
            if p.thumbnail is not None
        ]
        if thumbs:
            conn.execute(insert(thumbnails), thumbs)
        features = [
            dict(image_id=i, instance_id=instance_id, data=p.local_features)
            for i, _, p in written
            if p.local_features is not None
        ]
        if features:
            conn.execute(insert(keypoints), features)

    def upsert(
        self,
        instance_id: str,
        image: NewImage,
        *,
        capacity: int,
        now: datetime,
        thumbnail: bytes | None = None,
        local_features: bytes | None = None,
    ) -> WriteResult:
        """Insert or overwrite one picture; an overwrite does not count against capacity.

        `thumbnail` (JPEG) and `local_features` (lookalike.domain.keypoint_codec) are written in the same
        transaction, replacing the old ones; None drops an old one, so an overwritten picture never shows
        its predecessor's thumbnail nor is checked against its features."""
        key = and_(
            images.c.instance_id == instance_id,
            images.c.product_id == image.product_id,
            images.c.pic_name == image.pic_name,
        )
        # Reads then writes: the write lock is taken up front (SQLite would otherwise fail the upgrade from
        # reader to writer with "database is locked" when another add committed in between).
        with write_transaction(self._engine) as conn:
            # The locked instance row makes the capacity check and the insert one step.
            count = self._lock_instance(conn, instance_id)
            existing = conn.execute(select(images.c.id).where(key)).scalar_one_or_none()
            if existing is None:
                if count >= capacity:
                    raise self._over_quota(capacity)
                result = conn.execute(insert(images).values(**self._new_row(instance_id, image, now)))
                pk = result.inserted_primary_key
                assert pk is not None
                image_id = int(pk[0])
                created = True
                self._add_to_count(conn, instance_id, 1)
            else:
                image_id = int(existing)
                conn.execute(update(images).where(images.c.id == image_id).values(**self._values(image, now)))
                created = False
            seq = self._log_change(conn, instance_id, image_id, "upsert")
            conn.execute(update(images).where(images.c.id == image_id).values(seq=seq))
            self._write_extras(
                conn, instance_id, [(image_id, created, NewPicture(image, thumbnail, local_features))]
            )
        return WriteResult(image_id, seq, created)

    def upsert_many(
        self, instance_id: str, pictures: Sequence[NewPicture], *, capacity: int, now: datetime
    ) -> list[WriteResult]:
        """``upsert`` of many pictures in one transaction (the bulk import's write), with the same
        guarantees: the instance row locked, the capacity checked for the batch's new keys before anything
        is written (raises INSTANCE_OVER_QUOTA, writing none of the batch), the picture count kept, one
        change-log seq per picture in the batch's order, thumbnails and local features replaced. The keys
        must be distinct within the batch. Multi-row statements (SQLAlchemy's insertmanyvalues: multi-row
        INSERT ... RETURNING on PostgreSQL and SQLite). Results are in the order of ``pictures``."""
        if not pictures:
            return []
        keys = [(p.image.product_id, p.image.pic_name) for p in pictures]
        if len(set(keys)) != len(keys):
            raise ValueError("upsert_many: the keys of a batch must be distinct")
        with write_transaction(self._engine) as conn:
            count = self._lock_instance(conn, instance_id)
            existing = self._ids_of_keys(conn, instance_id, keys)
            fresh = [p for p, k in zip(pictures, keys, strict=True) if k not in existing]
            if fresh and count + len(fresh) > capacity:
                raise self._over_quota(capacity)
            ids = dict(existing)
            if fresh:
                inserted = conn.execute(
                    insert(images).returning(
                        images.c.id, images.c.product_id, images.c.pic_name, sort_by_parameter_order=True
                    ),
                    [self._new_row(instance_id, p.image, now) for p in fresh],
                )
                for row in inserted:
                    ids[(row.product_id, row.pic_name)] = int(row.id)
                self._add_to_count(conn, instance_id, len(fresh))
            overwritten = [p for p, k in zip(pictures, keys, strict=True) if k in existing]
            if overwritten:
                conn.execute(
                    update(images).where(images.c.id == bindparam("b_id")),
                    [
                        {
                            "b_id": existing[(p.image.product_id, p.image.pic_name)],
                            **self._values(p.image, now),
                        }
                        for p in overwritten
                    ],
                )
            image_ids = [ids[k] for k in keys]
            logged = conn.execute(
                insert(changes).returning(changes.c.seq, changes.c.image_id, sort_by_parameter_order=True),
                [dict(instance_id=instance_id, image_id=i, op="upsert") for i in image_ids],
            )
            seqs = [int(row.seq) for row in logged]
            conn.execute(
                update(images).where(images.c.id == bindparam("b_id")).values(seq=bindparam("b_seq")),
                [{"b_id": i, "b_seq": s} for i, s in zip(image_ids, seqs, strict=True)],
            )
            self._write_extras(
                conn,
                instance_id,
                [(i, k not in existing, p) for i, k, p in zip(image_ids, keys, pictures, strict=True)],
            )
        return [
            WriteResult(i, s, k not in existing) for i, s, k in zip(image_ids, seqs, keys, strict=True)
        ]

    @staticmethod
    def _ids_of_keys(
        conn: Connection, instance_id: str, keys: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], int]:
        """(ProductId, PicName) -> id of the instance's pictures among these keys."""
        found: dict[tuple[str, str], int] = {}
        for start in range(0, len(keys), 400):  # 2 bound values a key, under SQLite's limit of 999
            chunk = list(keys[start : start + 400])
            rows = conn.execute(
                select(images.c.id, images.c.product_id, images.c.pic_name).where(
                    images.c.instance_id == instance_id,
                    tuple_(images.c.product_id, images.c.pic_name).in_(chunk),
                )
            )
            for row in rows:
                found[(row.product_id, row.pic_name)] = int(row.id)
        return found

    def existing_keys(self, instance_id: str, keys: Sequence[tuple[str, str]]) -> set[tuple[str, str]]:
        """Which of these (ProductId, PicName) keys the instance already holds (a bulk import's capacity
        check counts only the others)."""
        with self._engine.connect() as conn:
            return set(self._ids_of_keys(conn, instance_id, keys))

    def get(self, instance_id: str, product_id: str, pic_name: str) -> ImageRecord | None:
        with self._engine.connect() as conn:
            row = conn.execute(
                select(*_RECORD_COLUMNS).where(
                    images.c.instance_id == instance_id,
                    images.c.product_id == product_id,
                    images.c.pic_name == pic_name,
                )
            ).first()
        return _record(row) if row else None

    def get_embedding(self, instance_id: str, product_id: str, pic_name: str) -> np.ndarray | None:
        """The picture's indexed vector."""
        views = self.get_views(instance_id, product_id, pic_name)
        return None if views is None else views[0]

    def get_views(self, instance_id: str, product_id: str, pic_name: str) -> np.ndarray | None:
        """The picture's stored views, (1 or 2, dim): the indexed vector first, then the whole picture's."""
        with self._engine.connect() as conn:
            row = conn.execute(
                select(images.c.embedding, images.c.aux_embedding).where(
                    images.c.instance_id == instance_id,
                    images.c.product_id == product_id,
                    images.c.pic_name == pic_name,
                )
            ).first()
        return None if row is None else _views(row.embedding, row.aux_embedding)

    def hydrate(self, instance_id: str, ids: Sequence[int]) -> dict[int, ImageRecord]:
        """Records for index hits; ids that no longer exist are simply absent."""
        if not ids:
            return {}
        with self._engine.connect() as conn:
            # Look up by primary key only: with instance_id in the WHERE clause SQLite walked the
            # (instance_id, category_id) index over every row of the instance (13 ms at 100k vs 0.08 ms).
            rows = conn.execute(select(*_RECORD_COLUMNS).where(images.c.id.in_(list(ids)))).all()
        return {int(r.id): _record(r) for r in rows if r.instance_id == instance_id}

    def _where(self, instance_id: str, filter_node: Node | None, category_id: int | None) -> list[Any]:
        clauses: list[Any] = [images.c.instance_id == instance_id]
        if category_id is not None:
            clauses.append(images.c.category_id == category_id)
        if filter_node is not None:
            clauses.append(compile_filter(filter_node, FILTER_COLUMNS))
        return clauses

    def matching_ids(self, instance_id: str, filter_node: Node | None, category_id: int | None) -> np.ndarray:
        with self._engine.connect() as conn:
            ids = conn.execute(select(images.c.id).where(*self._where(instance_id, filter_node, category_id)))
            return np.fromiter((int(r[0]) for r in ids), dtype=np.int64)

    def count(self, instance_id: str, filter_node: Node | None = None, category_id: int | None = None) -> int:
        if filter_node is None and category_id is None:
            return self.stored_count(instance_id)
        with self._engine.connect() as conn:
            value = conn.execute(
                select(func.count())
                .select_from(images)
                .where(*self._where(instance_id, filter_node, category_id))
            ).scalar_one()
        return int(value)

    def list_filtered(
        self, instance_id: str, filter_node: Node | None, *, offset: int, limit: int
    ) -> list[ImageRecord]:
        with self._engine.connect() as conn:
            rows = conn.execute(
                select(*_RECORD_COLUMNS)
                .where(*self._where(instance_id, filter_node, None))
                .order_by(images.c.id)
                .offset(offset)
                .limit(limit)
            ).all()
        return [_record(r) for r in rows]

    def browse(
        self, instance_id: str, filter_node: Node | None, product_id: str | None, *, offset: int, limit: int
    ) -> tuple[list[ImageRecord], int]:
        """One page of an instance's pictures (oldest first) matching a filter and/or a ProductId, and how
        many match in all: the console's picture list."""
        clauses = self._where(instance_id, filter_node, None)
        if product_id:
            clauses.append(images.c.product_id == product_id)
        with self._engine.connect() as conn:
            total = conn.execute(select(func.count()).select_from(images).where(*clauses)).scalar_one()
            rows = conn.execute(
                select(*_RECORD_COLUMNS).where(*clauses).order_by(images.c.id).offset(offset).limit(limit)
            ).all()
        return [_record(r) for r in rows], int(total)

    def get_by_id(self, instance_id: str, image_id: int) -> ImageRecord | None:
        with self._engine.connect() as conn:
            row = conn.execute(
                select(*_RECORD_COLUMNS).where(images.c.id == image_id, images.c.instance_id == instance_id)
            ).first()
        return _record(row) if row else None

    def thumbnail(self, instance_id: str, image_id: int) -> bytes | None:
        """The picture's thumbnail, only if the picture belongs to `instance_id`."""
        with self._engine.connect() as conn:
            data = conn.execute(
                select(thumbnails.c.data).where(
                    thumbnails.c.image_id == image_id, thumbnails.c.instance_id == instance_id
                )
            ).scalar_one_or_none()
        return None if data is None else bytes(data)

    def local_features(self, instance_id: str, image_ids: Sequence[int]) -> dict[int, bytes]:
        """The stored local features of these pictures (those of the instance that have them)."""
        ids = [int(i) for i in image_ids]
        with self._engine.connect() as conn:
            rows = _owned_by_id(
                conn, keypoints.c.image_id, keypoints.c.instance_id, instance_id, ids, [keypoints.c.data]
            )
        return {i: bytes(r.data) for i, r in rows.items()}

    def with_thumbnails(self, instance_id: str, image_ids: Sequence[int]) -> set[int]:
        """Which of these pictures have a thumbnail (a grid shows a placeholder for the others)."""
        if not image_ids:
            return set()
        with self._engine.connect() as conn:
            found = conn.execute(
                select(thumbnails.c.image_id).where(
                    thumbnails.c.instance_id == instance_id, thumbnails.c.image_id.in_(list(image_ids))
                )
            ).scalars()
            return {int(i) for i in found}

    def update_attributes(
        self, instance_id: str, product_id: str, pic_name: str, change: AttributeUpdate, now: datetime
    ) -> WriteResult | None:
        """None when the picture does not exist. The change is logged (op "attrs") because backends that
        filter inside the index (Milvus) hold copies of the attributes."""
        values = change.changed()
        key = and_(
            images.c.instance_id == instance_id,
            images.c.product_id == product_id,
            images.c.pic_name == pic_name,
        )
        with write_transaction(self._engine) as conn:  # reads then writes: take SQLite's lock up front
            self._lock_instance(conn, instance_id)
            image_id = conn.execute(select(images.c.id).where(key)).scalar_one_or_none()
            if image_id is None:
                return None
            seq = self._log_change(conn, instance_id, int(image_id), "attrs")
            if change.custom_content is not None:
                values["search_text"] = search_text([product_id, pic_name, change.custom_content])
            conn.execute(
                update(images).where(images.c.id == image_id).values(updated_at=now, seq=seq, **values)
            )
        return WriteResult(int(image_id), seq, False)

    def delete(
        self,
        instance_id: str,
        *,
        product_id: str | None = None,
        pic_name: str | None = None,
        filter_node: Node | None = None,
        image_ids: Sequence[int] | None = None,
    ) -> DeleteResult:
        clauses = self._where(instance_id, filter_node, None)
        if image_ids is not None:
            clauses.append(images.c.id.in_([int(i) for i in image_ids]))
        if product_id is not None:
            clauses.append(images.c.product_id == product_id)
        if pic_name is not None:
            clauses.append(images.c.pic_name == pic_name)
        with write_transaction(self._engine) as conn:
            self._lock_instance(conn, instance_id)
            rows = conn.execute(select(images.c.id, images.c.pic_name).where(*clauses)).all()
            if not rows:
                return DeleteResult([], [], 0)
            ids = [int(r.id) for r in rows]
            seq = 0
            for chunk_start in range(0, len(ids), 500):
                chunk = ids[chunk_start : chunk_start + 500]
                conn.execute(delete(images).where(images.c.id.in_(chunk)))
                conn.execute(delete(thumbnails).where(thumbnails.c.image_id.in_(chunk)))
                conn.execute(delete(keypoints).where(keypoints.c.image_id.in_(chunk)))
                for image_id in chunk:
                    seq = self._log_change(conn, instance_id, image_id, "delete")
            self._add_to_count(conn, instance_id, -len(ids))
        return DeleteResult(ids, [r.pic_name for r in rows], seq)

    def delete_instance_data(self, instance_id: str) -> None:
        with write_transaction(self._engine) as conn:
            purge_instance_rows(conn, instance_id)

    def stored_count(self, instance_id: str) -> int:
        """Pictures an instance holds: the maintained counter, one row read at any size."""
        with self._engine.connect() as conn:
            value = conn.execute(
                select(instances.c.image_count).where(instances.c.id == instance_id)
            ).scalar_one_or_none()
        return int(value or 0)

    def recount(self, instance_id: str) -> int:
        """Set the counter from the rows themselves (after a bulk load that bypassed upsert); the count."""
        with write_transaction(self._engine) as conn:
            self._lock_instance(conn, instance_id)
            count = int(
                conn.execute(
                    select(func.count()).select_from(images).where(images.c.instance_id == instance_id)
                ).scalar_one()
            )
            conn.execute(update(instances).where(instances.c.id == instance_id).values(image_count=count))
        return count

    def last_seq(self, instance_id: str) -> int:
        """The newest change seq of an instance (0 if none): one probe of ix_changes_instance_seq."""
        with self._engine.connect() as conn:
            value = conn.execute(
                select(func.max(changes.c.seq)).where(changes.c.instance_id == instance_id)
            ).scalar_one_or_none()
        return int(value or 0)

    def _rows_by_id(
        self,
        conn: Connection,
        instance_id: str,
        ids: list[int],
        with_attributes: bool,
        extra: Sequence[Any] = (),
    ) -> dict[int, Any]:
        """The current rows of these ids that belong to the instance, looked up by primary key only (with
        instance_id in the WHERE clause SQLite walks the instance's category index instead)."""
        columns = [images.c.embedding, *extra]
        if with_attributes:
            columns += [images.c[name] for name in SCALAR_FIELDS]
        return _owned_by_id(conn, images.c.id, images.c.instance_id, instance_id, ids, columns)

    def match_words(self, instance_id: str, query: list[str], limit: int) -> dict[int, float]:
        """Pictures of the instance whose words hold any of the query's words, through the full-text index:
        id -> the share of the query's words it holds (lookalike.domain.words.coverage), at most ``limit``
        of them, the database's best-ranked first."""
        if not query or limit <= 0:
            return {}
        with self._engine.connect() as conn:
            if conn.dialect.name == "sqlite":
                # Every word quoted: FTS5 reads bare words such as AND/NEAR as operators.
                match = " OR ".join('"' + word.replace('"', '""') + '"' for word in query)
                rows = conn.execute(
                    text(
                        "SELECT images.id, images.search_text FROM images_fts"
                        " JOIN images ON images.id = images_fts.rowid"
                        " WHERE images_fts MATCH :match AND images.instance_id = :instance"
                        " ORDER BY bm25(images_fts) LIMIT :limit"
                    ),
                    {"match": match, "instance": instance_id, "limit": limit},
                ).all()
            else:
                rows = conn.execute(
                    text(
                        "SELECT id, search_text FROM images, to_tsquery('simple', :query) AS q"
                        " WHERE instance_id = :instance AND to_tsvector('simple', search_text) @@ q"
                        " ORDER BY ts_rank(to_tsvector('simple', search_text), q) DESC LIMIT :limit"
                    ),
                    # Each word single-quoted as a tsquery lexeme ('' escapes a quote), OR'ed.
                    {
                        "query": " | ".join("'" + word.replace("'", "''") + "'" for word in query),
                        "instance": instance_id,
                        "limit": limit,
                    },
                ).all()
        return {int(r.id): coverage(query, r.search_text) for r in rows}

    def views_by_id(self, instance_id: str, ids: Sequence[int]) -> dict[int, np.ndarray]:
        """The stored views, (1 or 2, dim) each, of these pictures (those of the instance that still exist):
        the indexed vector first, then the whole picture's where there is one."""
        with self._engine.connect() as conn:
            rows = self._rows_by_id(conn, instance_id, [int(i) for i in ids], False, [images.c.aux_embedding])
        return {i: _views(r.embedding, r.aux_embedding) for i, r in rows.items()}

    def views_after(self, instance_id: str, after_id: int, limit: int) -> list[tuple[int, np.ndarray]]:
        """(id, stored views) of the instance's next ``limit`` pictures past ``after_id``, in id order."""
        with self._engine.connect() as conn:
            rows = conn.execute(
                select(images.c.id, images.c.embedding, images.c.aux_embedding)
                .where(images.c.instance_id == instance_id, images.c.id > after_id)
                .order_by(images.c.id)
                .limit(limit)
            ).all()
        return [(int(r.id), _views(r.embedding, r.aux_embedding)) for r in rows]

    def vectors_by_id(self, instance_id: str, ids: Sequence[int]) -> dict[int, np.ndarray]:
        """The stored vectors of these pictures (those of the instance that still exist)."""
        with self._engine.connect() as conn:
            rows = self._rows_by_id(conn, instance_id, [int(i) for i in ids], False)
        return {i: blob_to_vector(r.embedding) for i, r in rows.items()}

    @staticmethod
    def _batch(
        touched: list[int], rows: dict[int, Any], last_seq: int, dim: int, with_attributes: bool
    ) -> ChangeBatch:
        live = [i for i in touched if i in rows]
        vectors = np.empty((len(live), dim), np.float32)
        for n, image_id in enumerate(live):
            vectors[n] = blob_to_vector(rows[image_id].embedding)
        scalars = (
            [{name: rows[i]._mapping[name] for name in SCALAR_FIELDS} for i in live]
            if with_attributes
            else None
        )
        return ChangeBatch(
            np.array(live, np.int64),
            vectors,
            np.array([i for i in touched if i not in rows], np.int64),
            last_seq,
            scalars,
        )

    def iter_changes(
        self,
        instance_id: str,
        after_seq: int,
        dim: int,
        *,
        with_attributes: bool = False,
        chunk: int = STREAM_CHUNK,
    ) -> Iterator[ChangeBatch]:
        """The change log past ``after_seq`` in seq order, in bounded chunks. Each chunk carries the
        *current* state of the pictures it touches (vector, or gone), so applying the chunks in order
        converges to SQL whatever happened in between; memory stays one chunk at any log length."""
        position = after_seq
        while True:
            with self._engine.connect() as conn:
                log_rows = conn.execute(
                    select(changes.c.seq, changes.c.image_id)
                    .where(changes.c.instance_id == instance_id, changes.c.seq > position)
                    .order_by(changes.c.seq)
                    .limit(chunk)
                ).all()
                if not log_rows:
                    return
                touched = list(dict.fromkeys(int(r.image_id) for r in log_rows))
                rows = self._rows_by_id(conn, instance_id, touched, with_attributes)
            position = int(log_rows[-1].seq)
            yield self._batch(sorted(touched), rows, position, dim, with_attributes)
            if len(log_rows) < chunk:
                return

    def iter_live(
        self, instance_id: str, dim: int, *, with_attributes: bool = False, chunk: int = STREAM_CHUNK
    ) -> Iterator[ChangeBatch]:
        """Every live picture of the instance in ascending id order, in bounded chunks (a full rebuild
        reads these instead of the whole change log). ``last_seq`` of each chunk is 0: the caller takes
        the watermark from ``last_seq()`` read before the scan."""
        columns = [images.c.id, images.c.instance_id, images.c.embedding]
        if with_attributes:
            columns += [images.c[name] for name in SCALAR_FIELDS]
        after = -1
        while True:
            with self._engine.connect() as conn:
                found = conn.execute(
                    select(*columns)
                    .where(images.c.instance_id == instance_id, images.c.id > after)
                    .order_by(images.c.id)
                    .limit(chunk)
                ).all()
            if not found:
                return
            rows = {int(r.id): r for r in found}
            after = int(found[-1].id)
            yield self._batch(list(rows), rows, 0, dim, with_attributes)
            if len(found) < chunk:
                return

    def embeddings_of_model(self, model_id: str, after_id: int, limit: int) -> list[tuple[int, bytes]]:
        """(id, stored embedding) of up to ``limit`` pictures made by ``model_id``, past ``after_id``."""
        with self._engine.connect() as conn:
            rows = conn.execute(
                select(images.c.id, images.c.embedding)
                .where(images.c.id > after_id, images.c.model_id == model_id)
                .order_by(images.c.id)
                .limit(limit)
            ).all()
        return [(int(r.id), bytes(r.embedding)) for r in rows]

    def replace_embeddings(
        self, old_model_id: str, new_model_id: str, rows: Sequence[tuple[int, bytes]]
    ) -> None:
        """Re-encoded embeddings: only rows still of ``old_model_id`` change (a concurrent re-encode or an
        overwrite in between wins)."""
        if not rows:
            return
        with write_transaction(self._engine) as conn:
            conn.execute(
                update(images)
                .where(images.c.id == bindparam("image_id"), images.c.model_id == old_model_id)
                .values(embedding=bindparam("blob"), model_id=new_model_id),
                [{"image_id": i, "blob": b} for i, b in rows],
            )

    def iter_all_keys(self, instance_id: str) -> Iterable[tuple[str, str]]:
        with self._engine.connect() as conn:
            for row in conn.execute(
                select(images.c.product_id, images.c.pic_name).where(images.c.instance_id == instance_id)
            ):
                yield row.product_id, row.pic_name
