"""Keeps one derived vector index per instance in step with SQL.

Writes commit to SQL first, then reach the index under the instance's write lock,
so the index sees changes in sequence order. On first use an index is loaded from
disk and caught up from the change log; dirty indexes are saved periodically.
"""

from __future__ import annotations

import logging
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from lookalike.storage.images_repo import ImageRepository
from lookalike.storage.vector_index import FaissIndex

log = logging.getLogger(__name__)


class IndexManager:
    def __init__(self, root: Path, images: ImageRepository, dim: int, *, exact_below: int = 20_000) -> None:
        self._root = root
        self._images = images
        self._dim = dim
        self._exact_below = exact_below
        self._indexes: dict[str, FaissIndex] = {}
        self._dirty: set[str] = set()
        self._write_locks: dict[str, threading.Lock] = {}
        self._registry_lock = threading.Lock()
        self._stop = threading.Event()
        self._saver: threading.Thread | None = None

    def _write_lock(self, instance_id: str) -> threading.Lock:
        with self._registry_lock:
            return self._write_locks.setdefault(instance_id, threading.Lock())

    @contextmanager
    def writing(self, instance_id: str) -> Iterator[FaissIndex]:
        """Hold the instance's write lock across the SQL commit and the index apply."""
        lock = self._write_lock(instance_id)
        with lock:
            index = self._get_locked(instance_id)
            yield index
            with self._registry_lock:
                self._dirty.add(instance_id)

    def get(self, instance_id: str) -> FaissIndex:
        with self._registry_lock:
            index = self._indexes.get(instance_id)
        if index is not None:
            return index
        with self._write_lock(instance_id):
            return self._get_locked(instance_id)

    def _get_locked(self, instance_id: str) -> FaissIndex:
        with self._registry_lock:
            index = self._indexes.get(instance_id)
        if index is not None:
            return index
        index = FaissIndex.open(self._root / instance_id, self._dim, exact_below=self._exact_below)
        self._catch_up(instance_id, index)
        with self._registry_lock:
            self._indexes[instance_id] = index
        return index

    def _catch_up(self, instance_id: str, index: FaissIndex) -> None:
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
        shutil.rmtree(self._root / instance_id, ignore_errors=True)

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
