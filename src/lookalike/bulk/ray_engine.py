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
import pickle
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lookalike.bulk.rows import AddRow, add_row, last_of_each_key
from lookalike.bulk.writer import BulkWriter
from lookalike.config import Settings
from lookalike.domain import errors as e
from lookalike.domain.errors import LookalikeError
from lookalike.domain.models import ServiceType
from lookalike.importer import ImportItem, Journal, items_from_directory, items_from_manifest
from lookalike.service.picture_analysis import PictureRequest, analyze_many, stored_picture
from lookalike.storage.images_repo import NewPicture
from lookalike.vision.decode import ImageLimits
from lookalike.vision.embedder import Device


@dataclass(frozen=True)
class WorkerConfig:
    """What every analysis actor needs: the model's cache, the picture limits, and the add's options that
    depend on the instance and the server's settings."""

    models_dir: str
    limits: ImageLimits
    service_type: int
    thumbnail_size: int | None
    with_keypoints: bool
    model_id: str
    threads: int
    device: Device = "cpu"  # the setting `device`: auto / cpu / cuda (ONNX Runtime's CUDA provider)


def _read(row: AddRow, limits: ImageLimits) -> bytes:
    path = Path(row.path)
    try:
        if path.stat().st_size > limits.max_bytes:
            raise e.pic_too_large(limits.max_bytes)
        return path.read_bytes()
    except OSError as exc:
        raise LookalikeError(e.PIC_NOT_EXIST, f"cannot read {row.path}: {exc.strerror or exc}") from None


class Analyzer:
    """A Ray Data actor: column ``row`` (AddRow JSON) in; ``key``, ``error`` ("" when none) and ``payload``
    (a pickled NewPicture, b"" on error) out, one output row per input row."""

    def __init__(self, config: WorkerConfig) -> None:
        from lookalike.vectors.reduction import packaged as packaged_reduction
        from lookalike.vision.embedder import EfficientNetEmbedder

        self._config = config
        self._embedder = EfficientNetEmbedder(
            Path(config.models_dir), intra_op_threads=config.threads, device=config.device
        )
        self._embedder.load()
        self._reduction = packaged_reduction()

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        config = self._config
        rows = [AddRow.from_json(str(text)) for text in batch["row"]]
        errors: list[str] = [""] * len(rows)
        payloads: list[bytes] = [b""] * len(rows)
        requests: list[PictureRequest] = []
        readable: list[int] = []
        for n, row in enumerate(rows):
            try:
                data = _read(row, config.limits)
            except LookalikeError as exc:
                errors[n] = f"{exc.code}: {exc.message}"
                continue
            requests.append(PictureRequest(data, row.region, row.crop, row.category_id))
            readable.append(n)
        analyses = analyze_many(
            requests,
            limits=config.limits,
            embed=self._embedder.embed,
            reduce=self._reduction.reduce,
            service_type=ServiceType(config.service_type),
            with_keypoints=config.with_keypoints,
        )
        for n, analysis in zip(readable, analyses, strict=True):
            if isinstance(analysis, LookalikeError):
                errors[n] = f"{analysis.code}: {analysis.message}"
                continue
            row = rows[n]
            picture = stored_picture(
                analysis,
                product_id=row.product_id,
                pic_name=row.pic_name,
                attributes=row.attributes,
                custom_content=row.custom_content,
                model_id=config.model_id,
                thumbnail_size=config.thumbnail_size,
            )
            payloads[n] = pickle.dumps(picture, protocol=pickle.HIGHEST_PROTOCOL)
        return {
            "key": np.array([row.key for row in rows], dtype=object),
            "error": np.array(errors, dtype=object),
            "payload": np.array(payloads, dtype=object),
        }


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
    config: WorkerConfig,
    *,
    address: str | None,
    workers: int,
    batch_size: int,
    write_batch: int,
    cpus_per_worker: float,
    gpus_per_worker: float,
    progress: bool,
) -> Iterator[dict[str, np.ndarray]]:
    """Run the analysis on the cluster; yields the analysed rows, ``write_batch`` at a time."""
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
            fn_constructor_args=(config,),
            batch_size=batch_size,
            batch_format="numpy",
            # Ray Data's actor pools restart a worker process that dies and retry its batch (its defaults:
            # max_restarts=-1, max_task_retries=-1).
            compute=ray.data.ActorPoolStrategy(size=max(1, workers)),
            num_cpus=cpus_per_worker,
            num_gpus=gpus_per_worker or None,
        )
        yield from analysed.iter_batches(batch_size=write_batch, batch_format="numpy")
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
            config = WorkerConfig(
                models_dir=str(settings.models_dir),
                limits=settings.image_limits,
                service_type=target.service_type.value,
                thumbnail_size=writer.thumbnail_size(target),
                with_keypoints=settings.copy_verification,
                model_id=writer.model_id,
                threads=settings.embed_threads or max(1, int(cpus_per_worker)),
                device=settings.device,
            )
            paths = {row.key: row.path for row in rows}
            written = 0
            bar: Any = None
            if progress:
                from tqdm import tqdm

                bar = tqdm(total=len(items), initial=len(items) - len(pending), unit="img", desc="import")
            try:
                if rows:
                    for batch in _batches(
                        rows,
                        config,
                        address=address,
                        workers=workers,
                        batch_size=batch_size,
                        write_batch=write_batch,
                        cpus_per_worker=cpus_per_worker,
                        gpus_per_worker=gpus_per_worker,
                        progress=progress,
                    ):
                        keys = [str(k) for k in batch["key"]]
                        good: list[NewPicture] = []
                        good_keys: list[str] = []
                        for key, error, payload in zip(keys, batch["error"], batch["payload"], strict=True):
                            if error:
                                results.add(key, paths[key], str(error))
                            else:
                                good.append(pickle.loads(payload))
                                good_keys.append(key)
                        if good:
                            writer.write(target, good)
                            journal.record_many(good_keys)
                            written += len(good)
                        if bar is not None:
                            bar.update(len(keys))
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
