"""`lookalike import --engine ray`: the bulk import on a Ray cluster.

The driver reads the manifest (or directory), drops what the journal says is done, turns each item into an
add's options (a bad attribute is that row's error), and refuses the whole import before anything is written
when the instance could not hold its new keys. Ray Data then spreads the pictures over a pool of analysis
actors (one EfficientNet each; as many as ``workers``, on whichever nodes have room), which read the files,
decode and embed a batch at a time (lookalike.service.picture_analysis, the add's own code) and hand back
the rows an add would write. The driver writes them a batch per transaction into the operator's database and
index (lookalike.bulk.writer), then records the batch's keys in an fsync'd journal.

Resuming: a killed worker actor is restarted by Ray and its batch retried; a killed driver is re-run and skips
the journal's keys. A batch that was committed but not journaled is written again as an overwrite (adds are
upserts on ProductId + PicName), so nothing is lost or doubled.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Generator
from contextlib import closing
from pathlib import Path
from typing import Any

from lookalike.bulk.ray_analysis import Analyzer, ModelConfig, analysed_rows
from lookalike.bulk.rows import AddRow, add_row, last_of_each_key
from lookalike.bulk.writer import BulkWriter
from lookalike.config import Settings
from lookalike.domain.errors import LookalikeError
from lookalike.importer import ImportItem, Journal, items_from_directory, items_from_manifest
from lookalike.service.bulk_analysis import Analysed, StorageOptions
from lookalike.storage.images_repo import NewPicture


def read_items(source: Path) -> list[ImportItem]:
    """The manifest's (or directory's) items, one per key, the last one winning."""
    return last_of_each_key(items_from_manifest(source) if source.is_file() else items_from_directory(source))


class ResultFile:
    """The import's per-row errors, one JSON line each (ProductId, PicName, path, error), fsync'd on close."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.count = 0
        self.first: list[dict[str, str]] = []
        self._handle = path.open("w", encoding="utf-8")

    def add(self, key: str, path: str, error: str) -> None:
        product_id, pic_name = json.loads(key)
        entry = {"product_id": product_id, "pic_name": pic_name, "path": path, "error": error}
        self._handle.write(json.dumps(entry, ensure_ascii=False) + "\n")
        self.count += 1
        if len(self.first) < 100:
            self.first.append(entry)

    def close(self) -> None:
        self._handle.flush()
        os.fsync(self._handle.fileno())
        self._handle.close()


def _batches(
    rows: list[AddRow],
    model: ModelConfig,
    options: StorageOptions,
    *,
    address: str | None,
    workers: int,
    batch_size: int,
    write_batch: int,
    cpus_per_worker: float,
    gpus_per_worker: float,
    progress: bool,
) -> Generator[list[Analysed], None, None]:
    """Run the analysis on the cluster; yields each row's outcome, ``write_batch`` rows at a time."""
    import ray
    import ray.data

    started_here = not ray.is_initialized()
    if started_here:
        ray.init(address=address, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = progress
        context.print_on_execution_start = False
        dataset = ray.data.from_items([{"row": row.to_json()} for row in rows])
        analysed = dataset.map_batches(
            Analyzer,
            fn_constructor_args=(model, options),
            batch_size=batch_size,
            batch_format="numpy",
            # Ray Data's actor pools restart a worker process that dies and retry its batch (its defaults:
            # max_restarts=-1, max_task_retries=-1).
            compute=ray.data.ActorPoolStrategy(size=max(1, workers)),
            num_cpus=cpus_per_worker,
            num_gpus=gpus_per_worker or None,
        )
        for batch in analysed.iter_batches(batch_size=write_batch, batch_format="numpy"):
            yield analysed_rows(batch)
    finally:
        if started_here:
            ray.shutdown()


def run_ray_import(
    *,
    settings: Settings,
    source: Path,
    instance: str,
    state_dir: Path,
    address: str | None = None,
    workers: int = 2,
    batch_size: int = 16,
    write_batch: int = 256,
    cpus_per_worker: float = 1.0,
    gpus_per_worker: float = 0.0,
    progress: bool = True,
    on_batch: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Import ``source`` into the instance; returns the summary (as lookalike.importer.run_import's, plus the
    result file of per-row errors). Raises INSTANCE_OVER_QUOTA before writing anything when the new keys
    would not fit. ``on_batch(written so far)`` runs after each committed batch (tests kill things there)."""
    started = time.monotonic()
    items = read_items(source)
    writer = BulkWriter.from_settings(settings)
    try:
        target = writer.instance(instance)
        fingerprint = hashlib.sha256(f"{source.resolve()}|{target.id}|ray".encode()).hexdigest()[:16]
        journal = Journal(state_dir / f"{instance}-{fingerprint}.ray.jsonl")
        results = ResultFile(state_dir / f"{instance}-{fingerprint}.errors.jsonl")
        try:
            pending = [item for item in items if item.key not in journal.done]
            rows: list[AddRow] = []
            for item in pending:
                try:
                    rows.append(add_row(item))
                except LookalikeError as exc:
                    results.add(item.key, str(item.path), f"{exc.code}: {exc.message}")
            # Before anything is written: would the new keys fit?
            room = writer.check_capacity(target, [(row.product_id, row.pic_name) for row in rows])
            model = ModelConfig(
                models_dir=str(settings.models_dir),
                threads=settings.embed_threads or max(1, int(cpus_per_worker)),
                device=settings.device,
            )
            options = StorageOptions(
                service_type=target.service_type,
                thumbnail_size=writer.thumbnail_size(target),
                model_id=writer.model_id,
                limits=settings.image_limits,
                with_keypoints=settings.copy_verification,
            )
            paths = {row.key: row.path for row in rows}
            written = 0
            bar: Any = None
            if progress:
                from tqdm import tqdm

                bar = tqdm(total=len(items), initial=len(items) - len(pending), unit="img", desc="import")
            try:
                if rows:
                    # closing(): should a write fail mid-way, the generator's own cleanup (it disconnects from
                    # the cluster it connected to) runs now, not whenever the generator is collected.
                    batches = _batches(
                        rows,
                        model,
                        options,
                        address=address,
                        workers=workers,
                        batch_size=batch_size,
                        write_batch=write_batch,
                        cpus_per_worker=cpus_per_worker,
                        gpus_per_worker=gpus_per_worker,
                        progress=progress,
                    )
                    with closing(batches):
                        for batch in batches:
                            good: list[NewPicture] = []
                            good_keys: list[str] = []
                            for outcome in batch:
                                if outcome.error is not None:
                                    error = outcome.error
                                    results.add(
                                        outcome.key, paths[outcome.key], f"{error.code}: {error.message}"
                                    )
                                else:
                                    assert outcome.picture is not None
                                    good.append(outcome.picture)
                                    good_keys.append(outcome.key)
                            if good:
                                writer.write(target, good)
                                journal.record_many(good_keys)
                                written += len(good)
                            if bar is not None:
                                bar.update(len(batch))
                            if on_batch is not None:
                                on_batch(written)
            finally:
                if bar is not None:
                    bar.close()
        finally:
            journal.close()
            results.close()
    finally:
        writer.close()
    return {
        "engine": "ray",
        "total": len(items),
        "skipped": len(items) - len(pending),
        "added": written,
        "failed": results.count,
        "failures": results.first,
        "journal": str(journal.path),
        "result_file": str(results.path),
        "new_keys": room["new"],
        "seconds": round(time.monotonic() - started, 3),
    }
