"""A child process for tests/test_index_lifecycle.py: writes pictures through the service's storage and
index code (SQL commit, then the index, as ImageService does), prints "acked N" after each, saves the index
every few writes, and is killed with SIGKILL by the test at some point.

Usage: python index_writer.py DATABASE_URL INDEX_ROOT INSTANCE_ID FIRST COUNT SEED
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime

import numpy as np

from lookalike.domain.models import Attributes
from lookalike.storage.db import make_engine
from lookalike.storage.images_repo import ImageRepository, NewImage
from lookalike.vectors.manager import IndexManager
from lookalike.vectors.planner import IndexPolicy
from lookalike.vectors.reduction import packaged

# Small sizes so one test walks every stage: exact below 40, trained at 40, retrained at 2x growth.
POLICY = IndexPolicy(exact_below=40, exact_filtered_max=5, retrain_growth=2.0)


def vector_for(n: int, dim: int) -> np.ndarray:
    v = np.random.default_rng(n).standard_normal(dim).astype(np.float32)
    return v / np.linalg.norm(v)


def write(repo: ImageRepository, manager: IndexManager, instance_id: str, n: int) -> None:
    vector = vector_for(n, manager.dim)
    image = NewImage(
        product_id=f"p{n}",
        pic_name=f"{n}.jpg",
        category_id=n % 5,
        attributes=Attributes(int_attr=n % 7),
        custom_content="",
        region="0,10,0,10",
        embedding=vector,
        model_id=manager.model_id,
    )
    with manager.writing(instance_id) as index:
        written = repo.upsert(instance_id, image, capacity=10**9, now=datetime.now(UTC))
        index.upsert(np.array([written.image_id], np.int64), vector[None, :], written.seq)


def main() -> None:
    url, root, instance_id, first, count, seed = sys.argv[1:7]
    engine = make_engine(url)
    repo = ImageRepository(engine)
    manager = IndexManager(__import__("pathlib").Path(root), repo, packaged(), policy=POLICY)
    rng = np.random.default_rng(int(seed))
    for n in range(int(first), int(first) + int(count)):
        write(repo, manager, instance_id, n)
        if rng.random() < 0.1 and n > int(first):  # delete an older one now and then
            victim = int(rng.integers(int(first), n))
            with manager.writing(instance_id) as index:
                result = repo.delete(instance_id, product_id=f"p{victim}")
                if result.image_ids:
                    index.remove(np.array(result.image_ids, np.int64), result.seq)
        print(f"acked {n}", flush=True)
        if n % 15 == 0:
            manager.save_dirty()
    manager.close()
    print("done", flush=True)


if __name__ == "__main__":
    main()
