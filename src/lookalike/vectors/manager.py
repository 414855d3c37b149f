"""The one port the image service calls: keeps each instance's vector index in step with SQL, reduces
model features into the stored space, and plans searches (filters included) without the caller knowing
which backend holds the vectors.

Writes commit to SQL first, then reach the index under the instance's write lock, so the index sees
changes in sequence order. On first use an index is opened and caught up from SQL; dirty indexes are saved
periodically. Catch-up streams in bounded chunks at any size: an empty index is filled from the live rows
(in id order), a stale one from the change log past its watermark.

The index comes from a backend (``VectorBackend.open(instance_id, dim)``):

* per-process (``LocalBackend``, the default): each replica holds its own copy. Before a search one indexed
  ``SELECT max(seq)`` tells whether another process sharing the database wrote since; if so the copy
  catches up from the change log first, so a write on replica A is searchable on replica B.
* shared (Milvus): every replica reads and writes one copy, and the applied watermark is in SQL. A write is
  applied by a catch-up from the shared watermark that re-reads the current rows (vector + filter fields)
  and repeats until the log holds nothing newer, then moves the watermark forward. Two replicas doing this
  at once converge: whoever applied an older row re-reads the log afterwards and finds the newer change.
  Writers never move the watermark themselves, so a replica that died between its SQL commit and Milvus
  leaves a change below no watermark; the next catch-up anywhere (open, next write, periodic) applies it.
  This relies on an instance's changes committing in seq order (ImageRepository locks the instance row).
"""

from __future__ import annotations

import logging
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from lookalike.domain.filters import Node
from lookalike.storage.images_repo import ImageRepository
from lookalike.vectors import milvus
from lookalike.vectors.local_index import LocalIndex
from lookalike.vectors.milvus import MAX_TOP_K, as_filtering
from lookalike.vectors.planner import IndexPolicy
from lookalike.vectors.port import VectorBackend, VectorIndex
from lookalike.vectors.reduction import Reduction

log = logging.getLogger(__name__)


class LocalBackend:
    """The embedded default: a LocalIndex per instance under ``root``, persisted by save()."""

    shared = False

    def __init__(self, root: Path, policy: IndexPolicy | None = None) -> None:
        self._root = root
        self.policy = policy or IndexPolicy()

    def open(self, instance_id: str, dim: int) -> VectorIndex:
        return LocalIndex.open(self._root / instance_id, dim, self.policy)

    def drop(self, instance_id: str, dim: int) -> None:
        shutil.rmtree(self._root / instance_id, ignore_errors=True)

    def close(self) -> None:
        pass


class _Filtering(Protocol):
    """What a backend that stores the filter fields itself (Milvus) adds to VectorIndex."""

    def search_filtered(
        self, query: np.ndarray, k: int, node: Node | None, category_id: int | None
    ) -> tuple[np.ndarray, np.ndarray]: ...


@dataclass
class SearchScope:
    """One search's candidates: how many pictures match, and how to get the k best of them."""

    matched: int
    cap: int  # the most hits that can be asked for
    _index: VectorIndex
    _allowed: np.ndarray | None
    _inside: tuple[Node | None, int | None] | None  # the filter, when the index evaluates it

    def top(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The index's k nearest and its own scores (approximate on Milvus' quantized indexes: the image
        service re-scores every shortlist from SQL's stored vectors, so scores mean the same everywhere)."""
        if self._inside is not None:
            filtering: _Filtering = self._index  # type: ignore[assignment]
            return filtering.search_filtered(query, k, *self._inside)
        return self._index.search(query, k, self._allowed)

    def top_many(self, queries: np.ndarray, k: int) -> list[np.ndarray]:
        """Each query row's k nearest ids, in one pass where the scope is the whole instance."""
        if self._inside is None and self._allowed is None:
            return self._index.search_many(queries, k)
        return [self.top(query, k)[0] for query in queries]


@dataclass(frozen=True)
class IndexStatus:
    """What is known about one open index without I/O (read at every metrics scrape)."""

    instance_id: str
    vectors: int | None  # live vectors; None on a shared backend, where counting is a remote query
    mode: str  # "exact" or "ivf" (lookalike.vectors.planner) for an in-process index; "shared" on Milvus
    rebuilding: bool  # an IVF index is being retrained in the background
    unsaved: bool  # changes applied since the last save (the change log replays them after a crash)


class IndexManager:
    def __init__(
        self,
        root: Path,
        images: ImageRepository,
        reduction: Reduction,
        *,
        backend: VectorBackend | None = None,
        policy: IndexPolicy | None = None,
    ) -> None:
        self._root = root
        self._images = images
        self.reduction = reduction
        self.dim = reduction.dim_out
        self._backend: VectorBackend = backend or LocalBackend(root, policy)
        self._indexes: dict[str, VectorIndex] = {}
        self._dirty: set[str] = set()
        self._write_locks: dict[str, threading.Lock] = {}
        self._registry_lock = threading.Lock()
        self._stop = threading.Event()
        self._saver: threading.Thread | None = None

    # ------------------------------------------------------------------ the vector space

    @property
    def model_id(self) -> str:
        """The id of stored vectors: the model's and the reduction's."""
        return self.reduction.model_id()

    def reduce(self, features: np.ndarray) -> np.ndarray:
        """Model features (dim_in) -> the stored, L2-normalized space (dim)."""
        return self.reduction.reduce(features)

    # ------------------------------------------------------------------ indexes

    def _write_lock(self, instance_id: str) -> threading.Lock:
        with self._registry_lock:
            return self._write_locks.setdefault(instance_id, threading.Lock())

    @property
    def shared(self) -> bool:
        return self._backend.shared

    @contextmanager
    def writing(self, instance_id: str) -> Iterator[VectorIndex]:
        """Hold the instance's write lock across the SQL commit and the index apply."""
        lock = self._write_lock(instance_id)
        with lock:
            index = self._get_locked(instance_id)
            yield index
            with self._registry_lock:
                self._dirty.add(instance_id)
            if self._backend.shared:
                try:
                    self._catch_up_shared(instance_id, index)
                except Exception:  # committed in SQL: the next catch-up (periodic, open) applies it
                    log.exception("index %s: applying a write to the shared backend failed", instance_id)

    def get(self, instance_id: str) -> VectorIndex:
        """The instance's index, current with every change committed before the call (per-process backends
        check the change log; a shared backend already holds every replica's writes)."""
        with self._registry_lock:
            index = self._indexes.get(instance_id)
        if index is None:
            with self._write_lock(instance_id):
                return self._get_locked(instance_id)
        if not self._backend.shared and self._images.last_seq(instance_id) > index.applied_seq:
            with self._write_lock(instance_id):
                with self._registry_lock:
                    current = self._indexes.get(instance_id)
                if current is index:  # not dropped meanwhile
                    self._catch_up(instance_id, index)
        return index

    def _get_locked(self, instance_id: str) -> VectorIndex:
        with self._registry_lock:
            index = self._indexes.get(instance_id)
        if index is not None:
            return index
        index = self._backend.open(instance_id, self.dim)
        if self._backend.shared:
            self._catch_up_shared(instance_id, index)
        else:
            self._catch_up(instance_id, index)
        with self._registry_lock:
            self._indexes[instance_id] = index
        return index

    def _catch_up_shared(self, instance_id: str, index: VectorIndex) -> None:
        """Apply every change past the shared watermark from SQL's current rows, until none is newer."""
        filtering = as_filtering(index)
        start = position = index.applied_seq
        while True:
            moved = False
            for batch in self._images.iter_changes(instance_id, position, self.dim, with_attributes=True):
                if len(batch.delete_ids):
                    if filtering is not None:
                        filtering.delete_ids(batch.delete_ids)
                    else:
                        index.remove(batch.delete_ids, batch.last_seq)
                if len(batch.upsert_ids):
                    if filtering is not None and batch.upsert_scalars is not None:
                        filtering.upsert_records(batch.upsert_ids, batch.upsert_vectors, batch.upsert_scalars)
                    else:
                        index.upsert(batch.upsert_ids, batch.upsert_vectors, batch.last_seq)
                position, moved = batch.last_seq, True
            if not moved:
                break
        if position > start:
            index.applied_seq = position  # a compare-and-set: never moves the shared watermark back

    def reconcile_shared(self) -> None:
        """Catch every open shared index up (repairs writes whose replica died before reaching Milvus)."""
        if not self._backend.shared:
            return
        with self._registry_lock:
            open_ids = list(self._indexes)
        for instance_id in open_ids:
            with self._write_lock(instance_id):
                with self._registry_lock:
                    index = self._indexes.get(instance_id)
                if index is None:
                    continue
                try:
                    self._catch_up_shared(instance_id, index)
                except Exception:
                    log.exception("index %s: catching up the shared backend failed", instance_id)

    def _catch_up(self, instance_id: str, index: VectorIndex) -> None:
        """Bring a per-process index up to SQL in bounded chunks: from the live rows when it is empty
        (no history to replay), else from the change log past its watermark."""
        if index.applied_seq == 0 and len(index) == 0:
            watermark = self._images.last_seq(instance_id)  # before the scan: later writes replay next time
            if watermark == 0:
                return
            log.info("index %s: building from the stored vectors (watermark seq %d)", instance_id, watermark)
            with index.bulk():
                for batch in self._images.iter_live(instance_id, self.dim):
                    index.upsert(batch.upsert_ids, batch.upsert_vectors, 0)
                index.remove(np.empty(0, np.int64), watermark)
        start = index.applied_seq
        replayed = 0
        with index.bulk():
            for batch in self._images.iter_changes(instance_id, index.applied_seq, self.dim):
                if len(batch.delete_ids):
                    index.remove(batch.delete_ids, batch.last_seq)
                if len(batch.upsert_ids):
                    index.upsert(batch.upsert_ids, batch.upsert_vectors, batch.last_seq)
                if index.applied_seq < batch.last_seq:
                    index.remove(np.empty(0, np.int64), batch.last_seq)
                replayed += len(batch.upsert_ids) + len(batch.delete_ids)
        if replayed:
            log.info("index %s: replayed %d changes past seq %d", instance_id, replayed, start)
        with self._registry_lock:
            self._dirty.add(instance_id)

    # ------------------------------------------------------------------ searching

    def scope(self, instance_id: str, node: Node | None, category_id: int | None) -> SearchScope:
        """What a search of the instance may return: every picture, or those matching the filter and
        category. The planner inside the index picks exact or ANN; a backend that stores the filter
        fields (Milvus) evaluates a large match set itself instead of receiving the ids."""
        index = self.get(instance_id)
        filtering = as_filtering(index)
        if filtering is not None:
            if node is None and category_id is None:
                # A shared index can lag SQL and counts slowly; SQL's count is the truth there.
                matched = self._images.count(instance_id)
                return SearchScope(matched, max(matched, MAX_TOP_K), index, None, None)
            # Milvus: a match set beyond a few hundred runs as the compiled filter inside Milvus (faster than
            # shipping the ids, see ID_LIST_SEARCH_MAX); a small one goes as an exact `id in [...]`.
            matched = self._images.count(instance_id, node, category_id)
            cap = max(matched, MAX_TOP_K)
            if matched > milvus.ID_LIST_SEARCH_MAX:  # read at call time: tests lower it
                return SearchScope(matched, cap, index, None, (node, category_id))
            allowed = self._images.matching_ids(instance_id, node, category_id)
            return SearchScope(len(allowed), cap, index, allowed, None)
        if node is None and category_id is None:
            return SearchScope(len(index), len(index), index, None, None)
        allowed = self._images.matching_ids(instance_id, node, category_id)
        return SearchScope(len(allowed), len(allowed), index, allowed, None)

    def status(self) -> list[IndexStatus]:
        """Each index open in this process, as far as it is known without I/O."""
        with self._registry_lock:
            open_now = list(self._indexes.items())
            dirty = set(self._dirty)
        found = []
        for instance_id, index in open_now:
            if isinstance(index, LocalIndex):
                stats = index.stats()
                found.append(
                    IndexStatus(
                        instance_id,
                        int(stats["live"]),
                        str(stats["mode"]),
                        bool(stats["rebuilding"]),
                        instance_id in dirty,
                    )
                )
            else:
                found.append(IndexStatus(instance_id, None, "shared", False, instance_id in dirty))
        return found

    # ------------------------------------------------------------------ lifecycle

    def drop(self, instance_id: str) -> None:
        """Forget an instance's index and its files (instance released)."""
        with self._write_lock(instance_id), self._registry_lock:
            index = self._indexes.pop(instance_id, None)
            self._dirty.discard(instance_id)
        if index is not None:
            index.close()
        self._backend.drop(instance_id, self.dim)

    def drop_all(self, instance_ids: list[str]) -> None:
        """Forget the stored indexes of these instances; each rebuilds from SQL when next opened."""
        for instance_id in instance_ids:
            self.drop(instance_id)

    def save_dirty(self) -> None:
        with self._registry_lock:
            dirty = list(self._dirty)
            self._dirty.clear()
        for instance_id in dirty:
            with self._registry_lock:
                index = self._indexes.get(instance_id)
            if index is None:
                continue
            try:
                index.save()
            except Exception:  # a failed save only costs replay time on the next start
                log.exception("saving index %s failed", instance_id)
                with self._registry_lock:
                    self._dirty.add(instance_id)

    def start_background_saver(self, interval_s: float) -> None:
        def loop() -> None:
            while not self._stop.wait(interval_s):
                self.save_dirty()
                self.reconcile_shared()

        self._saver = threading.Thread(target=loop, name="index-saver", daemon=True)
        self._saver.start()

    def close(self) -> None:
        self._stop.set()
        if self._saver is not None:
            self._saver.join(timeout=5)
        self.save_dirty()
        with self._registry_lock:
            indexes = list(self._indexes.values())
            self._indexes.clear()
        for index in indexes:
            index.close()
        self._backend.close()
