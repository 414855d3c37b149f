"""Milvus as the vector backend shared by every replica (the scale-out alternative to FaissIndex).

Layout: one collection per embedding dimension (``<prefix>d<dim>``) and one *partition* per instance.
Measured on the standalone 2.3.5 server here (20 tenants x 500 vectors, 1280-d): creating and loading a
collection took ~3 s (median; up to 4 s) and each loaded collection added ~24 MB of server RSS, while a
partition was created in ~6 ms, released+dropped in ~6 ms, and 20 partitions holding the same data added
~5 MB each; search latency was the same (p50 3.3 ms in a partition vs 3.5 ms in a collection). So a new
tenant costs milliseconds, not seconds, and memory follows the data. Limit: Milvus allows 4096 partitions per
collection by default (rootCoord.maxPartitionNum) — beyond that many instances an operator raises it or a
second deployment prefix is used.

Each row: ``id`` (INT64 primary key = the SQL image id), ``vector`` (FLOAT_VECTOR, metric IP; embeddings are
L2-normalized, so IP is cosine), and copies of ``category_id`` and the eight filter attributes, so that a
filter runs inside Milvus (filter_milvus.compile_filter) instead of shipping every matching id.

SQL stays the source of truth. The change-log watermark ``applied_seq`` lives in SQL (table
vector_backend_state), not in this process: all replicas share the Milvus data, so they must share the
watermark too, and SQL gives a compare-and-set that only moves it forward. Writers do not move it — a replica
that commits seq 10 and dies before reaching Milvus must not be skipped because another replica applied 11 —
only IndexManager's catch-up does, after re-reading the current rows from SQL (see index_manager.py).

Copies in Milvus may lag (Bounded consistency, deletes visible after a delay): hits are hydrated from SQL,
which drops deleted pictures and re-checks the filter, so a lagging copy costs at most a missing hit, never a
wrong one.
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
import zlib
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final, Protocol, cast

import numpy as np
from sqlalchemy import Engine, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from lookalike.domain.filters import Node
from lookalike.storage.tables import INT_ATTR_COLUMNS, STR_ATTR_COLUMNS, vector_backend_state
from lookalike.vectors.milvus_filter import compile_filter
from lookalike.vectors.port import VectorIndex

if TYPE_CHECKING:
    from pymilvus import MilvusClient

log = logging.getLogger(__name__)

# Index types for the shared collection (one per dimension, shared by every instance's partition). The
# default IVF_SQ8 keeps 1 byte per dimension (256 B a picture at 256-d, a quarter of float32) and suits tens
# of millions of rows; its approximate scores are replaced by exact ones from SQL's stored vectors
# (IndexManager.scope). IVF_PQ is smaller still (dim/4 bytes); DISKANN keeps the graph on disk; HNSW and
# IVF_FLAT hold full float32 vectors in memory. Sizing per million: deploy/README.md.
INDEX_TYPES: Final = ("IVF_SQ8", "IVF_PQ", "DISKANN", "HNSW", "IVF_FLAT")
MAX_TOP_K: Final = 16384  # Milvus' limit on a search's limit (and HNSW's ef)
ID_LIST_LIMIT: Final = 4096  # largest `id in [...]` sent at once (~40 KB of expression)
SEARCH_MANY_BATCH: Final = 256  # query vectors per request of search_many (Milvus allows up to 16384)
# The service sends a filter's matching ids as `id in [...]` only up to this many, else the compiled filter.
# Measured (bench/backend_bench.py, 1% filter): an id list is about half as fast as the same filter evaluated
# inside Milvus at 200 ids (170 vs 353 QPS) and 1,000 ids (70 vs 137 QPS), and 7 vs 56 QPS at 9,931 ids; its
# only gain is reading SQL's attributes rather than Milvus' copies (which trail by the consistency window).
ID_LIST_SEARCH_MAX: Final = 256
_STR_MAX_BYTES: Final = 512  # VARCHAR max_length is in bytes: 128 characters of UTF-8
_BATCH_BYTES: Final = 4 << 20  # vectors per insert/upsert call: well under gRPC's 64 MB message limit
_DEFAULT_SCALARS: Final[Mapping[str, int | str]] = {
    "category_id": 0,
    **{name: 0 for name in INT_ATTR_COLUMNS},
    **{name: "" for name in STR_ATTR_COLUMNS},
}


class FilteringVectorIndex(VectorIndex, Protocol):
    """A VectorIndex that stores the filter fields and evaluates a filter tree itself."""

    filters_inside: bool

    def search_filtered(
        self, query: np.ndarray, k: int, node: Node | None, category_id: int | None
    ) -> tuple[np.ndarray, np.ndarray]: ...

    def upsert_records(
        self, ids: np.ndarray, vectors: np.ndarray, scalars: Sequence[Mapping[str, int | str]]
    ) -> None: ...

    def delete_ids(self, ids: np.ndarray) -> None: ...


def as_filtering(index: VectorIndex) -> FilteringVectorIndex | None:
    """`index` if it filters inside itself, else None. A flag, not isinstance on the Protocol: that would
    read every member, and MilvusIndex.applied_seq is a SQL query."""
    return cast(FilteringVectorIndex, index) if getattr(index, "filters_inside", False) else None


class SharedSeqStore:
    """The per-instance watermark of one shared backend, in SQL (vector_backend_state)."""

    def __init__(self, engine: Engine, backend: str) -> None:
        if len(backend) > 64:  # the column's width: keep the key unique but short
            backend = f"{backend[:55]}~{zlib.crc32(backend.encode()):08x}"
        self._engine = engine
        self.backend = backend

    def _key(self, instance_id: str) -> Any:
        t = vector_backend_state.c
        return (t.instance_id == instance_id) & (t.backend == self.backend)

    def get(self, instance_id: str) -> int:
        with self._engine.connect() as conn:
            value = conn.execute(
                select(vector_backend_state.c.applied_seq).where(self._key(instance_id))
            ).scalar_one_or_none()
        return int(value or 0)

    def advance(self, instance_id: str, seq: int) -> None:
        """Move the watermark forward to `seq` (never back: a slower replica's older value loses)."""
        for _ in range(3):
            with self._engine.begin() as conn:
                result = conn.execute(
                    update(vector_backend_state)
                    .where(self._key(instance_id), vector_backend_state.c.applied_seq < seq)
                    .values(applied_seq=seq)
                )
                if result.rowcount:
                    return
                exists = conn.execute(
                    select(vector_backend_state.c.applied_seq).where(self._key(instance_id))
                ).first()
                if exists is not None:
                    return  # already at or past seq
            try:
                with self._engine.begin() as conn:
                    conn.execute(
                        insert(vector_backend_state).values(
                            instance_id=instance_id, backend=self.backend, applied_seq=seq
                        )
                    )
                return
            except IntegrityError:  # another replica inserted it first: retry as an update
                continue

    def forget(self, instance_id: str) -> None:
        with self._engine.begin() as conn:
            conn.execute(delete(vector_backend_state).where(self._key(instance_id)))


def partition_name(instance_id: str) -> str:
    """A valid, injective Milvus partition name for an instance id (letters, digits, underscores)."""
    if re.fullmatch(r"[A-Za-z0-9-]{1,200}", instance_id):
        return "i_" + instance_id.replace("-", "_")  # "_" never occurs in the id, so this is injective
    return "h_" + instance_id.encode().hex()[:240]


def _is_exists_error(exc: Exception) -> bool:
    return "exist" in str(exc).lower()


class MilvusBackend:
    """Opens MilvusIndex views (one partition per instance) on one Milvus deployment."""

    shared = True  # every replica sees the same data: IndexManager catches up through SQL, not per process

    def __init__(
        self,
        uri: str,
        *,
        engine: Engine,
        token: str | None = None,
        collection_prefix: str = "lookalike_",
        consistency: str = "Bounded",
        index_type: str = "IVF_SQ8",
        hnsw_m: int = 16,
        ef_construction: int = 200,
        ef_search: int = 128,
        nlist: int = 1024,
        nprobe: int = 32,
        write_through: bool = True,
        client: MilvusClient | None = None,
    ) -> None:
        if index_type not in INDEX_TYPES:
            raise ValueError(f"unsupported Milvus index type {index_type!r}")
        if client is None:
            # Imported here: pymilvus is the optional [scale] dependency and slow to import.
            from pymilvus import MilvusClient

            client = MilvusClient(uri=uri, token=token or "")
        self.client = client
        self.uri = uri
        self.prefix = collection_prefix
        self.consistency = consistency
        self.index_type = index_type
        self.hnsw_m = hnsw_m
        self.ef_construction = ef_construction
        self.ef_search = ef_search
        self.nlist = nlist
        self.nprobe = nprobe
        # False under IndexManager: its catch-up applies every write from SQL's current row (with the
        # attributes) right after the commit, so a direct apply would only write the same row twice.
        self.write_through = write_through
        self._engine = engine
        self._ready: set[str] = set()  # collections created and loaded by this process
        self._lock = threading.Lock()

    def collection_name(self, dim: int) -> str:
        return f"{self.prefix}d{dim}"

    def seq_store(self, dim: int) -> SharedSeqStore:
        return SharedSeqStore(self._engine, f"milvus:{self.collection_name(dim)}")

    def _ensure_collection(self, dim: int) -> str:
        name = self.collection_name(dim)
        with self._lock:
            if name in self._ready:
                return name
            from pymilvus import DataType, MilvusClient

            if not self.client.has_collection(name):
                schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
                schema.add_field("id", DataType.INT64, is_primary=True)
                schema.add_field("vector", DataType.FLOAT_VECTOR, dim=dim)
                schema.add_field("category_id", DataType.INT64)
                for column in INT_ATTR_COLUMNS:
                    schema.add_field(column, DataType.INT64)
                for column in STR_ATTR_COLUMNS:
                    schema.add_field(column, DataType.VARCHAR, max_length=_STR_MAX_BYTES)
                params = self.client.prepare_index_params()
                index_params: dict[str, int] = {}
                if self.index_type == "HNSW":
                    index_params = {"M": self.hnsw_m, "efConstruction": self.ef_construction}
                elif self.index_type == "IVF_PQ":
                    index_params = {"nlist": self.nlist, "m": max(1, dim // 4), "nbits": 8}
                elif self.index_type.startswith("IVF"):
                    index_params = {"nlist": self.nlist}
                params.add_index("vector", index_type=self.index_type, metric_type="IP", params=index_params)
                try:
                    self.client.create_collection(
                        name, schema=schema, index_params=params, consistency_level=self.consistency
                    )
                except Exception as exc:  # another replica created it meanwhile
                    if not _is_exists_error(exc):
                        raise
            # Idempotent; after a server restart it brings the collection back into memory.
            self.client.load_collection(name)
            self._ready.add(name)
            return name

    def open(self, instance_id: str, dim: int) -> MilvusIndex:
        collection = self._ensure_collection(dim)
        partition = partition_name(instance_id)
        if not self.client.has_partition(collection, partition):
            try:
                self.client.create_partition(collection, partition)
            except Exception as exc:
                if not _is_exists_error(exc):
                    raise
        # A partition created in a loaded collection is loaded with it; this covers a released one.
        self.client.load_partitions(collection, [partition])
        return MilvusIndex(self, collection, partition, instance_id, dim, self.seq_store(dim))

    def drop(self, instance_id: str, dim: int) -> None:
        """Delete an instance's vectors (its partition) and its watermark."""
        collection = self.collection_name(dim)
        partition = partition_name(instance_id)
        if self.client.has_collection(collection) and self.client.has_partition(collection, partition):
            self.client.release_partitions(collection, [partition])  # 2.3 refuses to drop a loaded one
            self.client.drop_partition(collection, partition)
        self.seq_store(dim).forget(instance_id)

    def close(self) -> None:
        self.client.close()


class MilvusIndex:
    """One instance's vectors: a partition of the backend's collection. Implements FilteringVectorIndex."""

    filters_inside = True

    def __init__(
        self,
        backend: MilvusBackend,
        collection: str,
        partition: str,
        instance_id: str,
        dim: int,
        seqs: SharedSeqStore,
    ) -> None:
        self._backend = backend
        self._client = backend.client
        self.collection = collection
        self.partition = partition
        self.instance_id = instance_id
        self.dim = dim
        self._seqs = seqs

    # --- the shared watermark ---
    @property
    def applied_seq(self) -> int:
        return self._seqs.get(self.instance_id)

    @applied_seq.setter
    def applied_seq(self, seq: int) -> None:
        self._seqs.advance(self.instance_id, seq)

    def __len__(self) -> int:
        rows = self._client.query(
            self.collection,
            filter="",
            output_fields=["count(*)"],
            partition_names=[self.partition],
            consistency_level=self._backend.consistency,
        )
        return int(rows[0]["count(*)"]) if rows else 0

    # --- writes ---
    def upsert(self, ids: np.ndarray, vectors: np.ndarray, seq: int) -> None:
        """VectorIndex.upsert: default filter fields; `seq` is not recorded (see the module docstring)."""
        if self._backend.write_through:
            self.upsert_records(ids, vectors, [_DEFAULT_SCALARS] * len(ids))

    def remove(self, ids: np.ndarray, seq: int) -> None:
        if self._backend.write_through:
            self.delete_ids(ids)

    def upsert_records(
        self, ids: np.ndarray, vectors: np.ndarray, scalars: Sequence[Mapping[str, int | str]]
    ) -> None:
        """Insert or overwrite rows by primary key (idempotent: replaying it is harmless)."""
        ids = np.asarray(ids, np.int64).reshape(-1)
        vecs = np.ascontiguousarray(vectors, dtype=np.float32).reshape(len(ids), self.dim)
        if len(scalars) != len(ids):
            raise ValueError("one scalar record per id")
        batch = max(1, _BATCH_BYTES // (4 * self.dim))
        for start in range(0, len(ids), batch):
            rows = [
                {"id": int(ids[i]), "vector": vecs[i], **scalars[i]}
                for i in range(start, min(start + batch, len(ids)))
            ]
            self._client.upsert(self.collection, rows, partition_name=self.partition)

    def delete_ids(self, ids: np.ndarray) -> None:
        id_list = [int(i) for i in np.asarray(ids, np.int64).reshape(-1)]
        for start in range(0, len(id_list), ID_LIST_LIMIT):
            self._client.delete(
                self.collection, ids=id_list[start : start + ID_LIST_LIMIT], partition_name=self.partition
            )

    # --- reads ---
    def _search(self, q: np.ndarray, k: int, expr: str) -> tuple[np.ndarray, np.ndarray]:
        hits = self._search_rows(q.reshape(1, -1), k, expr)[0]
        ids = np.fromiter((int(h["id"]) for h in hits), np.int64, len(hits))
        scores = np.fromiter((float(h["distance"]) for h in hits), np.float32, len(hits))
        return ids, scores

    def _search_rows(self, rows: np.ndarray, k: int, expr: str) -> list[Any]:
        """Milvus' hits for each query row (one request)."""
        k = min(k, MAX_TOP_K)
        if self._backend.index_type == "HNSW":
            params: dict[str, int] = {"ef": min(MAX_TOP_K, max(self._backend.ef_search, k))}
        elif self._backend.index_type == "DISKANN":
            params = {"search_list": min(MAX_TOP_K, max(100, 2 * k))}
        else:
            params = {"nprobe": self._backend.nprobe}
        result = self._client.search(
            self.collection,
            data=list(rows),
            filter=expr,
            limit=k,
            output_fields=[],
            partition_names=[self.partition],
            search_params={"metric_type": "IP", "params": params},
            consistency_level=self._backend.consistency,
        )
        rows_hits = list(result) if result else []
        return rows_hits + [[] for _ in range(len(rows) - len(rows_hits))]

    def _query(self, query: np.ndarray) -> np.ndarray:
        q = np.ascontiguousarray(query, dtype=np.float32).reshape(-1)
        if q.shape != (self.dim,):
            raise ValueError(f"query must have shape ({self.dim},)")
        return q

    def search(
        self, query: np.ndarray, k: int, allowed_ids: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k by inner product, best first. An id list travels as `id in [...]` in bounded chunks whose
        results are merged (exact for the ids, whatever their number)."""
        q = self._query(query)
        if k <= 0:
            return np.empty(0, np.int64), np.empty(0, np.float32)
        if allowed_ids is None:
            return self._search(q, k, "")
        wanted = np.unique(np.asarray(allowed_ids, np.int64).reshape(-1))
        parts: list[tuple[np.ndarray, np.ndarray]] = []
        for start in range(0, len(wanted), ID_LIST_LIMIT):
            chunk = wanted[start : start + ID_LIST_LIMIT]
            expr = f"id in [{', '.join(map(str, chunk.tolist()))}]"
            parts.append(self._search(q, min(k, len(chunk)), expr))
        if not parts:
            return np.empty(0, np.int64), np.empty(0, np.float32)
        ids = np.concatenate([p[0] for p in parts])
        scores = np.concatenate([p[1] for p in parts])
        order = np.argsort(-scores, kind="stable")[:k]
        return ids[order], scores[order]

    def search_many(self, queries: np.ndarray, k: int) -> list[np.ndarray]:
        """Each query's top-k ids, unfiltered, in requests of SEARCH_MANY_BATCH query vectors each."""
        q = np.ascontiguousarray(queries, dtype=np.float32)
        if q.ndim != 2 or q.shape[1] != self.dim:
            raise ValueError(f"queries must have shape (m, {self.dim})")
        if k <= 0:
            return [np.empty(0, np.int64) for _ in range(len(q))]
        found: list[np.ndarray] = []
        for start in range(0, len(q), SEARCH_MANY_BATCH):
            for hits in self._search_rows(q[start : start + SEARCH_MANY_BATCH], k, ""):
                found.append(np.fromiter((int(h["id"]) for h in hits), np.int64, len(hits)))
        return found

    def search_filtered(
        self, query: np.ndarray, k: int, node: Node | None, category_id: int | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k among the rows whose stored filter fields match (evaluated inside Milvus)."""
        q = self._query(query)
        if k <= 0:
            return np.empty(0, np.int64), np.empty(0, np.float32)
        clauses = []
        if category_id is not None:
            clauses.append(f"category_id == {int(category_id)}")
        if node is not None:
            clauses.append(f"({compile_filter(node)})")
        return self._search(q, k, " and ".join(clauses))

    def bulk(self) -> contextlib.AbstractContextManager[None]:
        """Milvus builds its index segments itself: nothing to defer."""
        return contextlib.nullcontext()

    def save(self) -> None:
        """Nothing to do: Milvus persists what it acknowledged."""

    def close(self) -> None:
        """Nothing per instance: the backend owns the client."""
