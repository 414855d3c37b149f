"""The embedded per-instance vector index: compact codes in RAM, full vectors memory-mapped on disk.

Layout of one instance's directory (one *generation* of files, replaced whole by a compaction):

* ``ids-<g>.i64``, ``alive-<g>.u8``, ``vectors-<g>.f16``: memory-mapped arrays indexed by *slot*. Slots
  are kept in ascending image-id order (SQL ids grow with every insert), so an id is found by binary
  search with no hash map in RAM. A delete clears ``alive``; an overwrite rewrites the slot in place.
* ``codes-<g>.u8``: once the instance is big enough, each slot's faiss "standalone" code (its coarse list
  number followed by its PQ code), kept so a warm start rebuilds the inverted lists without encoding.
* ``ivf-<t>.faiss``: the trained, empty IVF (coarse centroids + PQ codebooks), written once per training.
* ``manifest.json``: format, dims, slot count, applied change seq, file names; replaced atomically last.

In RAM: the IVF's inverted lists (code + 8-byte label per picture) — the only per-picture memory that is
not a page of a mapped file. Searches probe the lists, then re-rank a shortlist exactly with the float16
vectors; small instances and selective filters scan the float16 rows exactly (see planner.py).

Adds and deletes are O(1)-ish at any size: a delete removes its code from the one inverted list that holds
it (found from its stored code), with no tombstones in the lists. A compaction (dead slots > 25 %) or a
retraining (the instance grew 8x since the IVF was trained) builds the next generation in a background
thread from the mapped files while searches and writes go on; writes made meanwhile are re-applied to
the new generation before it is swapped in.

Durability: ``save()`` flushes the mapped files (msync) and then replaces the manifest. After a crash the
manifest's ``applied_seq`` is older than some pages on disk; every change past it is replayed from SQL,
which rewrites exactly the slots those changes touched, so the index converges to SQL. ``open`` falls back
to an empty index (applied_seq 0, so the service rebuilds it from SQL) on any inconsistency.
"""

from __future__ import annotations

import contextlib
import json
import logging
import mmap
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import faiss
import numpy as np
import numpy.typing as npt

from lookalike.domain.vector_codec import STORED_DTYPE
from lookalike.vectors.planner import (
    IndexPolicy,
    Mode,
    needs_compaction,
    needs_training,
    nlist_for,
    plan_search,
    train_sample_size,
)
from lookalike.vectors.rwlock import RWLock

log = logging.getLogger(__name__)
_faiss: Any = cast(Any, faiss)  # faiss' bundled stubs lack some SWIG classes

F32 = npt.NDArray[np.float32]
I64 = npt.NDArray[np.int64]

FORMAT_VERSION = 2
_MANIFEST = "manifest.json"
_MIN_CAPACITY = 1024
_CHUNK = 65_536  # rows per streamed chunk (32 MB of float32 at 256-d)
PQ_BYTES_PER_DIM = 0.25  # PQ code: one byte per 4 dims (64 B at 256-d); bench/code_choice.py


def _code_factory(dim: int, nlist: int, train_points: int) -> str:
    m = max(1, int(dim * PQ_BYTES_PER_DIM))
    while dim % m:
        m -= 1
    # 8-bit codebooks need 256 training points; tiny trainings (tests, a small exact_below) use fewer bits.
    nbits = max(1, min(8, int(np.log2(max(train_points, 2)))))
    return f"IVF{nlist},PQ{m}x{nbits}"


def _sorted_unique(ids: I64) -> I64:
    """np.unique by sorting: numpy's hash-based unique costs ~0.5 s for a 1M-id filter, a sort ~10 ms
    (and filters from SQL arrive sorted already)."""
    if len(ids) > 1 and not bool((ids[1:] > ids[:-1]).all()):
        ids = np.sort(ids)
        ids = ids[np.concatenate(([True], ids[1:] != ids[:-1]))]
    return ids


def _advise_random(arr: np.memmap[Any, Any]) -> None:
    """No read-ahead on the vectors file: a re-rank touches a few hundred scattered rows, and the
    default read-ahead would pull ~128 KB from disk around each one once the file outgrows the page cache."""
    mapping = getattr(arr, "_mmap", None)
    advice = getattr(mmap, "MADV_RANDOM", None)
    if mapping is not None and advice is not None:
        with contextlib.suppress(OSError, ValueError):
            mapping.madvise(advice)


def _fsync_path(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _top_k(ids: I64, scores: F32, k: int) -> tuple[I64, F32]:
    if len(scores) > k:
        part = np.argpartition(-scores, k - 1)[:k]
        ids, scores = ids[part], scores[part]
    order = np.argsort(-scores, kind="stable")
    return ids[order], scores[order]


class _Files:
    """One generation's memory-mapped slot arrays (grown by doubling)."""

    def __init__(self, directory: Path, gen: int, dim: int, code_size: int, capacity: int, *, create: bool):
        self.directory, self.gen, self.dim, self.code_size = directory, gen, dim, code_size
        self.capacity = 0
        self.ids: np.memmap[Any, np.dtype[np.int64]]
        self.alive: np.memmap[Any, np.dtype[np.uint8]]
        self.vectors: np.memmap[Any, np.dtype[np.float16]]
        self.codes: np.memmap[Any, np.dtype[np.uint8]] | None = None
        if create:
            for name in self.names():
                (directory / name).unlink(missing_ok=True)
        self._map(max(capacity, _MIN_CAPACITY) if create else self._capacity_on_disk())

    def names(self) -> list[str]:
        names = [f"ids-{self.gen}.i64", f"alive-{self.gen}.u8", f"vectors-{self.gen}.f16"]
        if self.code_size:
            names.append(f"codes-{self.gen}.u8")
        return names

    def _capacity_on_disk(self) -> int:
        return (self.directory / f"ids-{self.gen}.i64").stat().st_size // 8

    def _map(self, capacity: int) -> None:
        d = self.directory
        specs: list[tuple[str, Any, tuple[int, ...]]] = [
            (f"ids-{self.gen}.i64", np.int64, (capacity,)),
            (f"alive-{self.gen}.u8", np.uint8, (capacity,)),
            (f"vectors-{self.gen}.f16", STORED_DTYPE, (capacity, self.dim)),
        ]
        if self.code_size:
            specs.append((f"codes-{self.gen}.u8", np.uint8, (capacity, self.code_size)))
        maps = []
        for name, dtype, shape in specs:
            path = d / name
            size = int(np.prod(shape)) * np.dtype(dtype).itemsize
            with path.open("ab") as f:
                if f.tell() < size:
                    f.truncate(size)
            maps.append(np.memmap(path, dtype=dtype, mode="r+", shape=shape))
        self.ids, self.alive, self.vectors = maps[0], maps[1], maps[2]
        _advise_random(self.vectors)
        self.codes = maps[3] if self.code_size else None
        self.capacity = capacity

    def ensure(self, rows: int) -> None:
        if rows > self.capacity:
            self.flush()
            self._map(max(rows, 2 * self.capacity))

    def flush(self) -> None:
        for arr in (self.ids, self.alive, self.vectors, self.codes):
            if arr is not None:
                arr.flush()


@dataclass
class _Ivf:
    index: Any  # faiss IndexIVF (PQ codes), labels = slots
    trained_n: int
    name: str  # file of the trained empty index
    coarse_size: int

    @property
    def nlist(self) -> int:
        return int(self.index.nlist)

    def list_numbers(self, codes: npt.NDArray[np.uint8]) -> I64:
        out = np.zeros(len(codes), np.int64)
        for byte in range(self.coarse_size):
            out |= codes[:, byte].astype(np.int64) << (8 * byte)
        return out

    def add(self, codes: npt.NDArray[np.uint8], slots: I64) -> None:
        if len(slots):
            self.index.add_sa_codes(np.ascontiguousarray(codes), np.ascontiguousarray(slots, np.int64))

    def remove(self, codes: npt.NDArray[np.uint8], slots: I64) -> None:
        """Remove each slot from the one list its code names (swap with the list's last entry)."""
        inv = self.index.invlists
        for list_no, slot in zip(self.list_numbers(codes).tolist(), slots.tolist(), strict=True):
            size = inv.list_size(list_no)
            labels = faiss.rev_swig_ptr(inv.get_ids(list_no), size)
            where = np.flatnonzero(labels == slot)
            if not len(where):
                continue
            pos, last = int(where[0]), size - 1
            if pos != last:
                inv.update_entry(list_no, pos, int(labels[last]), inv.get_single_code(list_no, last))
            inv.resize(list_no, last)
            self.index.ntotal -= 1

    def shift_labels(self, from_slot: int) -> None:
        """Every label >= from_slot moves up by one (a slot was inserted below it)."""
        inv = self.index.invlists
        for list_no in range(self.nlist):
            size = inv.list_size(list_no)
            if size:
                labels = faiss.rev_swig_ptr(inv.get_ids(list_no), size)
                labels[labels >= from_slot] += 1


class LocalIndex:
    """The in-process index of one instance (see the module docstring)."""

    def __init__(self, directory: Path, dim: int, policy: IndexPolicy | None = None) -> None:
        self.directory = Path(directory)
        self.dim = dim
        self.policy = policy or IndexPolicy()
        self.applied_seq = 0
        self._lock = RWLock()  # searches share it; a mutation takes it exclusively
        self._write_mutex = threading.Lock()  # one writer (or save, or swap) at a time
        self._closed = False
        self._gen = 0
        self._files: _Files | None = None
        self._n = 0  # slots in use
        self._live = 0
        self._ivf: _Ivf | None = None
        self._rebuild: threading.Thread | None = None
        self._touched: set[int] | None = None  # ids written while a rebuild runs
        self._rebuild_broken = False  # a slot was inserted mid-rebuild: it must start over
        self._bulk = 0  # inside bulk(): maintenance waits for the end of the load

    # ------------------------------------------------------------------ open / reset

    @classmethod
    def open(cls, directory: Path, dim: int, policy: IndexPolicy | None = None) -> LocalIndex:
        index = cls(directory, dim, policy)
        index.directory.mkdir(parents=True, exist_ok=True)
        if (index.directory / _MANIFEST).exists():
            try:
                index._load()
            except Exception as exc:  # any inconsistency means "rebuild from SQL", never a crash
                log.warning("vector index in %s unusable (%s); starting empty", index.directory, exc)
                index._clear()
        return index

    def _clear(self) -> None:
        self._files, self._ivf = None, None
        self._n = self._live = 0
        self.applied_seq = 0
        self._gen += 1

    def _load(self) -> None:
        manifest = json.loads((self.directory / _MANIFEST).read_text())
        if manifest.get("format") != FORMAT_VERSION or manifest.get("dim") != self.dim:
            raise ValueError(f"format/dim {manifest.get('format')}/{manifest.get('dim')} differ")
        gen, n = int(manifest["gen"]), int(manifest["slots"])
        ivf: _Ivf | None = None
        code_size = 0
        if manifest.get("ivf"):
            template: Any = faiss.read_index(str(self.directory / manifest["ivf"]["file"]))
            if template.d != self.dim or template.ntotal != 0:
                raise ValueError("trained index does not match")
            ivf = _Ivf(
                template,
                int(manifest["ivf"]["trained_n"]),
                manifest["ivf"]["file"],
                int(template.coarse_code_size()),
            )
            code_size = int(template.sa_code_size())
        files = _Files(self.directory, gen, self.dim, code_size, 0, create=False)
        if files.capacity < n or files.vectors.shape[0] < n:
            raise ValueError("slot files shorter than the manifest")
        ids = files.ids[:n]
        if n > 1 and not bool(np.all(ids[1:] > ids[:-1])):
            raise ValueError("slot ids are not strictly increasing")
        alive = files.alive[:n]
        if n and int(alive.max(initial=0)) > 1:
            raise ValueError("alive flags damaged")
        live = 0
        if ivf is not None:
            assert files.codes is not None
            for start in range(0, n, _CHUNK * 4):
                stop = min(n, start + _CHUNK * 4)
                rows = np.flatnonzero(alive[start:stop]).astype(np.int64) + start
                codes = np.asarray(files.codes[rows])
                if len(rows) and int(ivf.list_numbers(codes).max()) >= ivf.nlist:
                    raise ValueError("stored codes name lists that do not exist")
                ivf.add(codes, rows)
                live += len(rows)
        else:
            live = int(np.count_nonzero(alive))
        self._gen, self._files, self._n, self._live, self._ivf = gen, files, n, live, ivf
        self.applied_seq = int(manifest["applied_seq"])

    def _require_files(self) -> _Files:
        if self._files is None:
            code_size = int(self._ivf.index.sa_code_size()) if self._ivf else 0
            self._files = _Files(self.directory, self._gen, self.dim, code_size, 0, create=True)
        return self._files

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("vector index is closed")

    # ------------------------------------------------------------------ slots

    def _slots_of(self, ids: I64) -> I64:
        """Slot of each id, -1 where the id has no slot (alive or not)."""
        if self._files is None or self._n == 0 or len(ids) == 0:
            return np.full(len(ids), -1, np.int64)
        stored = self._files.ids[: self._n]
        pos = np.searchsorted(stored, ids)
        found = pos < self._n
        found[found] = stored[pos[found]] == ids[found]
        return np.where(found, pos, -1).astype(np.int64)

    def _encode(self, vectors: F32) -> npt.NDArray[np.uint8] | None:
        if self._ivf is None:
            return None
        return np.asarray(self._ivf.index.sa_encode(np.ascontiguousarray(vectors)), np.uint8)

    def _insert_slot(self, pos: int) -> None:
        """Open slot ``pos`` by shifting the slots above it (only for an id older than the newest one,
        which SQL's growing ids make rare)."""
        files = self._require_files()
        files.ensure(self._n + 1)
        n = self._n
        for arr in (files.ids, files.alive, files.vectors, files.codes):
            if arr is not None:
                arr[pos + 1 : n + 1] = arr[pos:n].copy()
        if self._ivf is not None:
            self._ivf.shift_labels(pos)
        self._n += 1
        if self._touched is not None:
            self._rebuild_broken = True

    # ------------------------------------------------------------------ writes

    @staticmethod
    def _as_ids(ids: npt.ArrayLike) -> I64:
        arr = np.asarray(ids)
        if arr.ndim != 1 or not (np.issubdtype(arr.dtype, np.integer) or arr.size == 0):
            raise ValueError("ids must be a 1-d integer array")
        return arr.astype(np.int64, copy=False)

    def __len__(self) -> int:
        return self._live

    def upsert(self, ids: npt.ArrayLike, vectors: npt.ArrayLike, seq: int) -> None:
        id_arr = self._as_ids(ids)
        vecs = np.ascontiguousarray(vectors, dtype=np.float32)
        if vecs.ndim != 2 or vecs.shape != (len(id_arr), self.dim):
            raise ValueError(f"vectors must have shape ({len(id_arr)}, {self.dim})")
        if not np.isfinite(vecs).all():
            raise ValueError("vectors must be finite")
        # The last occurrence of an id wins; then ascending ids, so new ones append in order.
        _, first_of_reversed = np.unique(id_arr[::-1], return_index=True)
        keep = len(id_arr) - 1 - first_of_reversed
        keep = keep[np.argsort(id_arr[keep], kind="stable")]
        id_arr, vecs = id_arr[keep], vecs[keep]
        with self._write_mutex:
            self._check_open()
            with self._lock.write():
                self._upsert_locked(id_arr, vecs)
                self.applied_seq = max(self.applied_seq, seq)
            self._maintain()

    def _upsert_locked(self, ids: I64, vecs: F32) -> None:
        files = self._require_files()
        stored = vecs.astype(STORED_DTYPE)
        # Re-rank and the exact path score the stored float16 values; encode those too.
        vecs = stored.astype(np.float32)
        slots = self._slots_of(ids)
        newest = int(files.ids[self._n - 1]) if self._n else -1
        append = (slots < 0) & (ids > newest)
        existing = np.flatnonzero(slots >= 0)
        if len(existing):
            rows = slots[existing]
            if self._touched is not None:  # a running rebuild copies these again at its swap
                self._touched.update(ids[existing].tolist())
            if self._ivf is not None:
                assert files.codes is not None
                was_alive = files.alive[rows] == 1
                self._ivf.remove(np.asarray(files.codes[rows[was_alive]]), rows[was_alive])
            self._live += int(np.count_nonzero(files.alive[rows] == 0))
            files.vectors[rows] = stored[existing]
            files.alive[rows] = 1
            codes = self._encode(vecs[existing])
            if codes is not None and self._ivf is not None:
                assert files.codes is not None
                files.codes[rows] = codes
                self._ivf.add(codes, rows)
        for i in np.flatnonzero((slots < 0) & ~append).tolist():  # older than the newest id: rare
            pos = int(np.searchsorted(files.ids[: self._n], ids[i]))
            self._insert_slot(pos)
            self._write_new(np.array([pos], np.int64), ids[i : i + 1], stored[i : i + 1], vecs[i : i + 1])
        new = np.flatnonzero(append)
        if len(new):
            start = self._n
            files.ensure(start + len(new))
            rows = np.arange(start, start + len(new), dtype=np.int64)
            self._n += len(new)
            self._write_new(rows, ids[new], stored[new], vecs[new])

    def _write_new(self, rows: I64, ids: I64, stored: npt.NDArray[np.float16], vecs: F32) -> None:
        files = self._require_files()
        files.ids[rows] = ids
        files.vectors[rows] = stored
        files.alive[rows] = 1
        self._live += len(rows)
        for start in range(0, len(rows), _CHUNK):
            part = slice(start, start + _CHUNK)
            codes = self._encode(vecs[part])
            if codes is not None and self._ivf is not None:
                assert files.codes is not None
                files.codes[rows[part]] = codes
                self._ivf.add(codes, rows[part])

    def remove(self, ids: npt.ArrayLike, seq: int) -> None:
        id_arr = np.unique(self._as_ids(ids))
        with self._write_mutex:
            self._check_open()
            with self._lock.write():
                if self._touched is not None:
                    self._touched.update(id_arr.tolist())
                slots = self._slots_of(id_arr)
                slots = slots[slots >= 0]
                if len(slots) and self._files is not None:
                    files = self._files
                    slots = slots[files.alive[slots] == 1]
                    if self._ivf is not None and len(slots):
                        assert files.codes is not None
                        self._ivf.remove(np.asarray(files.codes[slots]), slots)
                    files.alive[slots] = 0
                    self._live -= len(slots)
                self.applied_seq = max(self.applied_seq, seq)
            self._maintain()

    # ------------------------------------------------------------------ maintenance

    @contextlib.contextmanager
    def bulk(self) -> Iterator[None]:
        """A load of many writes: train once at the end, on everything, instead of at every growth step."""
        with self._write_mutex:
            self._bulk += 1
        try:
            yield
        finally:
            with self._write_mutex:
                self._bulk -= 1
                if not self._bulk and not self._closed:
                    self._maintain()

    def _maintain(self) -> None:
        """First training (synchronous, small), or a background rebuild. Caller holds _write_mutex."""
        if self._bulk or (self._rebuild is not None and self._rebuild.is_alive()):
            return
        trained_n = self._ivf.trained_n if self._ivf else None
        if self._ivf is None and needs_training(self._live, None, self.policy):
            self._build_generation(background=False)
        elif self._ivf is not None and (
            needs_training(self._live, trained_n, self.policy)
            or needs_compaction(self._n, self._n - self._live, self.policy)
        ):
            self._start_rebuild()

    def _start_rebuild(self) -> None:
        self._touched = set()
        self._rebuild_broken = False
        self._rebuild = threading.Thread(
            target=self._rebuild_worker, name=f"index-rebuild-{self.directory.name}", daemon=True
        )
        self._rebuild.start()

    def _rebuild_worker(self) -> None:
        try:
            self._build_generation(background=True)
        except Exception:
            log.exception("rebuilding the vector index in %s failed; the old one stays", self.directory)
            with self._write_mutex:
                self._touched = None

    def wait_for_maintenance(self, timeout: float | None = None) -> None:
        """Block until a running background rebuild has finished (tests, benchmarks, shutdown)."""
        thread = self._rebuild
        if thread is not None:
            thread.join(timeout)

    def _live_slots(self, files: _Files, n: int) -> I64:
        return np.flatnonzero(np.asarray(files.alive[:n]) == 1).astype(np.int64)

    def _train(self, files: _Files, live_slots: I64) -> _Ivf:
        nlist = nlist_for(len(live_slots), self.policy)
        rng = np.random.default_rng(len(live_slots))
        take = train_sample_size(nlist, len(live_slots))
        sample = np.sort(rng.choice(live_slots, size=take, replace=False))
        x = np.asarray(files.vectors[sample], dtype=np.float32)
        index: Any = faiss.index_factory(
            self.dim, _code_factory(self.dim, nlist, take), faiss.METRIC_INNER_PRODUCT
        )
        index.cp.min_points_per_centroid = 1  # small first trainings: no warning storm
        # index_factory turns on polysemous training (a code reordering for Hamming search, which we never
        # use); it is ~5/6 of the training time (50 s of 60 s for PQ64 on 16k points, 2 cores).
        index.do_polysemous_training = False
        index.train(x)
        name = f"ivf-{self._gen + 1}.faiss"
        faiss.write_index(index, str(self.directory / name))
        _fsync_path(self.directory / name)
        return _Ivf(index, len(live_slots), name, int(index.coarse_code_size()))

    def _build_generation(self, *, background: bool) -> None:
        """Next generation: only live slots, retrained when the instance grew (or first trained).

        In the background, reads go to the current generation's mapped files without the lock; the ids
        written meanwhile (``_touched``) and the slots appended meanwhile are re-applied at the swap."""
        old, n0 = self._files, self._n
        if old is None:
            return
        live_slots = self._live_slots(old, n0)
        if len(live_slots) == 0:
            return
        retrain = self._ivf is None or needs_training(len(live_slots), self._ivf.trained_n, self.policy)
        ivf = self._train(old, live_slots) if retrain else self._fresh_ivf()
        gen = self._gen + 1
        code_size = int(ivf.index.sa_code_size())
        new = _Files(self.directory, gen, self.dim, code_size, int(len(live_slots) * 1.25), create=True)
        assert new.codes is not None
        for start in range(0, len(live_slots), _CHUNK):
            src = live_slots[start : start + _CHUNK]
            dst = np.arange(start, start + len(src), dtype=np.int64)
            new.ids[dst] = old.ids[src]
            stored = np.asarray(old.vectors[src])
            new.vectors[dst] = stored
            new.alive[dst] = 1
            if retrain or old.codes is None:
                codes = np.asarray(ivf.index.sa_encode(stored.astype(np.float32)), np.uint8)
            else:
                codes = np.asarray(old.codes[src])
            new.codes[dst] = codes
            ivf.add(codes, dst)
        swap = self._write_mutex if background else contextlib.nullcontext()
        with swap, self._lock.write():
            if self._closed or self._files is not old or self._rebuild_broken:
                self._touched = None
                for name in new.names():
                    (self.directory / name).unlink(missing_ok=True)
                return
            touched = np.array(sorted(self._touched or ()), np.int64)
            extra = np.arange(n0, self._n, dtype=np.int64)
            self._files, self._ivf, self._gen = new, ivf, gen
            self._n, self._live = len(live_slots), len(live_slots)
            self._touched = None
            # Replay onto the new generation what changed since the snapshot, from the old files.
            extra_ids = np.asarray(old.ids[extra]) if len(extra) else np.empty(0, np.int64)
            redo = np.union1d(touched, extra_ids).astype(np.int64)
            if len(redo):
                pos = np.searchsorted(np.asarray(old.ids[: n0 + len(extra)]), redo)
                pos = np.minimum(pos, max(n0 + len(extra) - 1, 0))
                found = np.asarray(old.ids[pos]) == redo
                alive = np.zeros(len(redo), bool)
                alive[found] = np.asarray(old.alive[pos[found]]) == 1
                if alive.any():
                    vecs = np.asarray(old.vectors[pos[alive]]).astype(np.float32)
                    self._upsert_locked(redo[alive], vecs)
                dead = redo[~alive]
                slots = self._slots_of(dead)
                slots = slots[slots >= 0]
                if len(slots):
                    slots = slots[new.alive[slots] == 1]
                    self._ivf.remove(np.asarray(new.codes[slots]), slots)
                    new.alive[slots] = 0
                    self._live -= len(slots)
        log.info(
            "index %s: generation %d, %d pictures, %d lists", self.directory.name, gen, self._live, ivf.nlist
        )

    def _fresh_ivf(self) -> _Ivf:
        assert self._ivf is not None
        template: Any = faiss.read_index(str(self.directory / self._ivf.name))
        return _Ivf(template, self._ivf.trained_n, self._ivf.name, self._ivf.coarse_size)

    # ------------------------------------------------------------------ search

    def search(
        self, query: npt.ArrayLike, k: int, allowed_ids: npt.ArrayLike | None = None
    ) -> tuple[I64, F32]:
        """Top-k live (and allowed) ids by inner product, best first."""
        q = np.ascontiguousarray(query, dtype=np.float32).reshape(-1)
        if q.shape != (self.dim,):
            raise ValueError(f"query must have shape ({self.dim},)")
        with self._lock.read():
            self._check_open()
            files = self._files
            if k <= 0 or self._live == 0 or files is None:
                return np.empty(0, np.int64), np.empty(0, np.float32)
            slots: I64 | None = None
            if allowed_ids is not None:
                want = _sorted_unique(self._as_ids(np.asarray(allowed_ids)))
                slots = self._slots_of(want)
                slots = slots[slots >= 0]
                slots = slots[np.asarray(files.alive[slots]) == 1]
                if len(slots) == 0:
                    return np.empty(0, np.int64), np.empty(0, np.float32)
            plan = plan_search(
                self._live,
                None if slots is None else len(slots),
                k,
                trained_nlist=self._ivf.nlist if self._ivf else None,
                policy=self.policy,
            )
            if plan.mode is Mode.EXACT:
                return self._exact(files, q, k, slots)
            return self._ann(files, q, k, slots, plan.nprobe, plan.shortlist)

    def search_many(self, queries: npt.ArrayLike, k: int) -> list[I64]:
        """Top-k live ids of each row of ``queries`` (m, dim), unfiltered: one scan of the rows for all
        queries (exact), or one batched IVF probe re-ranked exactly per query (ANN), as ``search`` plans."""
        q = np.ascontiguousarray(queries, dtype=np.float32)
        if q.ndim != 2 or q.shape[1] != self.dim:
            raise ValueError(f"queries must have shape (m, {self.dim})")
        with self._lock.read():
            self._check_open()
            files = self._files
            if k <= 0 or self._live == 0 or files is None or len(q) == 0:
                return [np.empty(0, np.int64) for _ in range(len(q))]
            trained = self._ivf.nlist if self._ivf else None
            plan = plan_search(self._live, None, k, trained_nlist=trained, policy=self.policy)
            if plan.mode is Mode.EXACT:
                return self._exact_many(files, q, k)
            assert self._ivf is not None
            params = _faiss.SearchParametersIVF()
            params.nprobe = plan.nprobe
            _, labels = self._ivf.index.search(q, max(plan.shortlist, k), params=params)
            found: list[I64] = []
            for row, query in zip(labels, q, strict=True):
                cand = np.sort(row[row >= 0].astype(np.int64))
                found.append(_top_k(np.asarray(files.ids[cand]), self._score(files, query, cand), k)[0])
            return found

    def _exact_many(self, files: _Files, q: F32, k: int) -> list[I64]:
        best_ids = [np.empty(0, np.int64) for _ in range(len(q))]
        best_scores = [np.empty(0, np.float32) for _ in range(len(q))]
        for start in range(0, self._n, _CHUNK):
            stop = min(self._n, start + _CHUNK)
            alive = np.asarray(files.alive[start:stop]) == 1
            ids = np.asarray(files.ids[start:stop])[alive]
            scores = q @ np.asarray(files.vectors[start:stop], dtype=np.float32)[alive].T  # (m, chunk)
            for row in range(len(q)):
                best_ids[row], best_scores[row] = _top_k(
                    np.concatenate([best_ids[row], ids]), np.concatenate([best_scores[row], scores[row]]), k
                )
        return best_ids

    def _score(self, files: _Files, q: F32, slots: I64) -> F32:
        return np.asarray(files.vectors[slots], dtype=np.float32) @ q

    def _exact(self, files: _Files, q: F32, k: int, slots: I64 | None) -> tuple[I64, F32]:
        best_ids: list[I64] = []
        best_scores: list[F32] = []
        if slots is None:
            for start in range(0, self._n, _CHUNK):
                stop = min(self._n, start + _CHUNK)
                scores = np.asarray(files.vectors[start:stop], dtype=np.float32) @ q
                alive = np.asarray(files.alive[start:stop]) == 1
                ids, sc = _top_k(np.asarray(files.ids[start:stop])[alive], scores[alive], k)
                best_ids.append(ids)
                best_scores.append(sc)
        else:
            for start in range(0, len(slots), _CHUNK):
                part = slots[start : start + _CHUNK]
                ids, sc = _top_k(np.asarray(files.ids[part]), self._score(files, q, part), k)
                best_ids.append(ids)
                best_scores.append(sc)
        if not best_ids:
            return np.empty(0, np.int64), np.empty(0, np.float32)
        return _top_k(np.concatenate(best_ids), np.concatenate(best_scores), k)

    def _ann(
        self, files: _Files, q: F32, k: int, slots: I64 | None, nprobe: int, shortlist: int
    ) -> tuple[I64, F32]:
        assert self._ivf is not None
        params = _faiss.SearchParametersIVF()
        params.nprobe = nprobe
        bitmap: npt.NDArray[np.uint8] | None = None
        if slots is not None:
            mask = np.zeros(self._n, np.bool_)
            mask[slots] = True
            bitmap = np.packbits(mask, bitorder="little")
            # `bitmap` must outlive the search: faiss keeps only the raw pointer.
            params.sel = faiss.IDSelectorBitmap(len(bitmap), faiss.swig_ptr(bitmap))
        _, labels = self._ivf.index.search(q.reshape(1, -1), max(shortlist, k), params=params)
        cand = labels[0][labels[0] >= 0].astype(np.int64)
        cand = np.sort(cand)  # ascending slots: the gather walks the mapped file forwards
        return _top_k(np.asarray(files.ids[cand]), self._score(files, q, cand), k)

    # ------------------------------------------------------------------ persistence

    def save(self) -> None:
        """Flush the mapped files, then atomically replace the manifest (see the module docstring)."""
        with self._write_mutex:
            self._check_open()
            d = self.directory
            d.mkdir(parents=True, exist_ok=True)
            files = self._require_files()
            files.flush()
            manifest: dict[str, Any] = {
                "format": FORMAT_VERSION,
                "dim": self.dim,
                "gen": self._gen,
                "slots": self._n,
                "live": self._live,
                "applied_seq": self.applied_seq,
                "ivf": None,
            }
            keep = set(files.names())
            if self._ivf is not None:
                manifest["ivf"] = {
                    "file": self._ivf.name,
                    "trained_n": self._ivf.trained_n,
                    "nlist": self._ivf.nlist,
                }
                keep.add(self._ivf.name)
            tmp = d / f"{_MANIFEST}.tmp"
            with tmp.open("w") as f:
                json.dump(manifest, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, d / _MANIFEST)
            _fsync_path(d)
            building = self._rebuild is not None and self._rebuild.is_alive()
            for stale in d.iterdir():  # older generations (never the one a running rebuild writes)
                if building or stale.name == _MANIFEST or stale.name in keep:
                    continue
                if stale.name.startswith(("ids-", "alive-", "vectors-", "codes-", "ivf-", f"{_MANIFEST}.")):
                    with contextlib.suppress(OSError):
                        stale.unlink()

    # ------------------------------------------------------------------ introspection / lifecycle

    def stats(self) -> dict[str, int | float | str]:
        with self._lock.read():
            return {
                "live": self._live,
                "slots": self._n,
                "dead_slots": self._n - self._live,
                "mode": "ivf" if self._ivf is not None and self._live >= self.policy.exact_below else "exact",
                "nlist": self._ivf.nlist if self._ivf else 0,
                "trained_n": self._ivf.trained_n if self._ivf else 0,
                "generation": self._gen,
                "applied_seq": self.applied_seq,
                "rebuilding": int(self._rebuild is not None and self._rebuild.is_alive()),
            }

    def ram_bytes(self) -> int:
        """Bytes of process memory the index holds beyond mapped file pages: the inverted lists."""
        if self._ivf is None:
            return 0
        inv = self._ivf.index.invlists
        per_entry = int(inv.code_size) + 8
        return int(self._ivf.index.ntotal) * per_entry + self._ivf.nlist * (self.dim * 4 + 48)

    def close(self) -> None:
        """Release memory. Does not save: the service calls save() first."""
        self.wait_for_maintenance(timeout=600)
        with self._write_mutex, self._lock.write():
            self._closed = True
            if self._files is not None:
                self._files.flush()
            self._files = None
            self._ivf = None
