"""The contracts of the vector package: one per-instance index, and the backend that opens them.

The image service sees neither: it calls ``IndexManager`` (manager.py), which keeps every index in step
with SQL, reduces query features into the stored space and plans filtered searches.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class VectorIndex(Protocol):
    """One instance's vectors (reduced, L2-normalized), searched by inner product."""

    dim: int
    applied_seq: int  # the newest change-log seq reflected here

    def __len__(self) -> int: ...
    def upsert(self, ids: np.ndarray, vectors: np.ndarray, seq: int) -> None: ...
    def remove(self, ids: np.ndarray, seq: int) -> None: ...
    def search(
        self, query: np.ndarray, k: int, allowed_ids: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]: ...
    def search_many(self, queries: np.ndarray, k: int) -> list[np.ndarray]:
        """Each query's (m, dim) top-k ids, unfiltered, in one pass (a duplicate scan's many queries)."""
        ...

    def bulk(self) -> AbstractContextManager[None]:
        """Around a load of many writes: the index may defer its maintenance (training) to the end."""
        ...

    def save(self) -> None: ...
    def close(self) -> None: ...


class VectorBackend(Protocol):
    """Where per-instance indexes come from. ``shared``: one copy serves every replica (Milvus)."""

    shared: bool

    def open(self, instance_id: str, dim: int) -> VectorIndex: ...
    def drop(self, instance_id: str, dim: int) -> None: ...
    def close(self) -> None: ...
