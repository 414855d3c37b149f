"""Keeps one derived vector index per instance in step with SQL.

Writes commit to SQL first, then reach the index under the instance's write lock,
so the index sees changes in sequence order. On first use an index is loaded from
disk and caught up from the change log; dirty indexes are saved periodically.

The index comes from a backend (`VectorBackend.open(instance_id, dim)`):

* per-process (faiss, the default): each replica holds its own copy. Before a search one indexed
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
from pathlib import Path
from typing import Protocol

import numpy as np

from lookalike.storage.images_repo import ImageRepository
from lookalike.storage.vector_index import FaissIndex, VectorIndex

log = logging.getLogger(__name__)


class VectorBackend(Protocol):
    """Where per-instance indexes come from. `shared`: one copy serves every replica (see the docstring)."""

    shared: bool

    def open(self, instance_id: str, dim: int) -> VectorIndex: ...
    def drop(self, instance_id: str, dim: int) -> None: ...
    def close(self) -> None: ...


class FaissBackend:
    """The embedded default: a FaissIndex per instance under `root`, persisted by save()."""

    shared = False

    def __init__(self, root: Path, *, exact_below: int = 20_000) -> None:
        self._root = root
        self._exact_below = exact_below

    def open(self, instance_id: str, dim: int) -> VectorIndex:
        return FaissIndex.open(self._root / instance_id, dim, exact_below=self._exact_below)

    def drop(self, instance_id: str, dim: int) -> None:
        shutil.rmtree(self._root / instance_id, ignore_errors=True)

    def close(self) -> None:
        pass


class IndexManager:
    def __init__(
        self,
        root: Path,
        images: ImageRepository,
        dim: int,
        *,
        exact_below: int = 20_000,
        backend: VectorBackend | None = None,
    ) -> None:
        self._root = root
        self._images = images
        self._dim = dim
        self._exact_below = exact_below
        self._backend: VectorBackend = backend or FaissBackend(root, exact_below=exact_below)
        self._indexes: dict[str, VectorIndex] = {}
        self._dirty: set[str] = set()
        self._write_locks: dict[str, threading.Lock] = {}
        self._registry_lock = threading.Lock()
        self._stop = threading.Event()
        self._saver: threading.Thread | None = None

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
        index = self._backend.open(instance_id, self._dim)
        if self._backend.shared:
            self._catch_up_shared(instance_id, index)
        else:
            self._catch_up(instance_id, index)
        with self._registry_lock:
            self._indexes[instance_id] = index
        return index

    def _catch_up_shared(self, instance_id: str, index: VectorIndex) -> None:
        """Apply every change past the shared watermark from SQL's current rows, until none is newer."""
        from lookalike.storage.milvus_index import as_filtering

        filtering = as_filtering(index)
        start = position = index.applied_seq
        while True:
            batch = self._images.changes_since(instance_id, position, self._dim, with_attributes=True)
            if batch.last_seq <= position:
                break
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
            position = batch.last_seq
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
        batch = self._images.changes_since(instance_id, index.applied_seq, self._dim)
        if batch.last_seq <= index.applied_seq:
            return
        log.info(
            "index %s: replaying %d upserts, %d deletes past seq %d",
            instance_id,
            len(batch.upsert_ids),
            len(batch.delete_ids),
            index.applied_seq,
        )
        if len(batch.delete_ids):
            index.remove(batch.delete_ids, batch.last_seq)
        if len(batch.upsert_ids):
            index.upsert(batch.upsert_ids, batch.upsert_vectors, batch.last_seq)
        if index.applied_seq < batch.last_seq:
            index.remove(np.empty(0, np.int64), batch.last_seq)
        with self._registry_lock:
            self._dirty.add(instance_id)

    def drop(self, instance_id: str) -> None:
        """Forget an instance's index and its files (instance released)."""
        with self._write_lock(instance_id), self._registry_lock:
            index = self._indexes.pop(instance_id, None)
            self._dirty.discard(instance_id)
        if index is not None:
            index.close()
        self._backend.drop(instance_id, self._dim)

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
