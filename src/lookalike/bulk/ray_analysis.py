"""The picture analysis on a Ray cluster, shared by `lookalike import --engine ray`
(lookalike.bulk.ray_engine, through Ray Data) and the server's IncreaseInstance tasks
(``RayAnalysisEngine``, the service's BulkAnalysisEngine port).

``Analyzer`` is the analysis actor: one EfficientNet per actor, a batch of pictures per call, each read from
its path, decoded and embedded as an add does (lookalike.service.picture_analysis, one model run for the
whole batch), and handed back as the rows an add would write, or as that picture's error.

The server keeps one pool of these actors for its whole life (a task runs in slices of a few seconds, too
short to start a pool each time) and feeds it through ``ray.util.ActorPool``; an actor whose process dies is
restarted by Ray and its batch retried (max_restarts / max_task_retries), as Ray Data does for the import.
"""

from __future__ import annotations

import pickle
import socket
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from lookalike.bulk.rows import AddRow
from lookalike.config import Settings
from lookalike.domain import errors as e
from lookalike.domain.errors import LookalikeError
from lookalike.domain.image_limits import ImageLimits
from lookalike.service.bulk_analysis import Analysed, EngineUnavailable, PictureJob, StorageOptions
from lookalike.service.picture_analysis import PictureRequest, analyze_many, stored_picture
from lookalike.vision.embedder import Device

PROBE_TIMEOUT_S = 3.0  # ray.init waits minutes for a head that is not there; a TCP connect says it at once
# Longest wait for one batch (a model load on a fresh actor included): past it the engine has failed. Under
# the task lease (lookalike.service.tasks.LEASE_S, 120 s), which the task renews after each batch.
BATCH_TIMEOUT_S = 90.0


@dataclass(frozen=True)
class ModelConfig:
    """What every analysis actor loads: the model's cache, its threads and device."""

    models_dir: str
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
    """The analysis actor: column ``row`` (AddRow JSON) in; ``key``, ``code`` and ``message`` (both "" when
    the picture is fine) and ``payload`` (a pickled NewPicture, b"" on error) out, a row for each row in."""

    def __init__(self, model: ModelConfig, options: StorageOptions | None = None) -> None:
        from lookalike.vectors.reduction import packaged as packaged_reduction
        from lookalike.vision.embedder import EfficientNetEmbedder

        self._embedder = EfficientNetEmbedder(
            Path(model.models_dir), intra_op_threads=model.threads, device=model.device
        )
        self._embedder.load()
        self._reduction = packaged_reduction()
        self._options = options  # Ray Data's actors serve one import: its options come with the actor

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Ray Data's entry (map_batches); the server's pool calls ``analyse`` with each task's options."""
        assert self._options is not None, "an Analyzer called by Ray Data is built with its options"
        return self.analyse(batch, self._options)

    def analyse(self, batch: dict[str, np.ndarray], options: StorageOptions) -> dict[str, np.ndarray]:
        rows = [AddRow.from_json(str(text)) for text in batch["row"]]
        codes: list[str] = [""] * len(rows)
        messages: list[str] = [""] * len(rows)
        payloads: list[bytes] = [b""] * len(rows)
        requests: list[PictureRequest] = []
        readable: list[int] = []
        for n, row in enumerate(rows):
            try:
                data = _read(row, options.limits)
            except LookalikeError as exc:
                codes[n], messages[n] = exc.code, exc.message
                continue
            requests.append(PictureRequest(data, row.region, row.crop, row.category_id))
            readable.append(n)
        analyses = analyze_many(
            requests,
            limits=options.limits,
            embed=self._embedder.embed,
            reduce=self._reduction.reduce,
            service_type=options.service_type,
            with_keypoints=options.with_keypoints,
        )
        for n, analysis in zip(readable, analyses, strict=True):
            if isinstance(analysis, LookalikeError):
                codes[n], messages[n] = analysis.code, analysis.message
                continue
            row = rows[n]
            picture = stored_picture(
                analysis,
                product_id=row.product_id,
                pic_name=row.pic_name,
                attributes=row.attributes,
                custom_content=row.custom_content,
                model_id=options.model_id,
                thumbnail_size=options.thumbnail_size,
            )
            payloads[n] = pickle.dumps(picture, protocol=pickle.HIGHEST_PROTOCOL)
        return {
            "key": np.array([row.key for row in rows], dtype=object),
            "code": np.array(codes, dtype=object),
            "message": np.array(messages, dtype=object),
            "payload": np.array(payloads, dtype=object),
        }


def analysed_rows(batch: dict[str, np.ndarray]) -> list[Analysed]:
    """An Analyzer's output batch as each row's outcome."""
    out: list[Analysed] = []
    for key, code, message, payload in zip(
        batch["key"], batch["code"], batch["message"], batch["payload"], strict=True
    ):
        if code:
            out.append(Analysed(str(key), None, LookalikeError(str(code), str(message))))
        else:
            out.append(Analysed(str(key), pickle.loads(payload), None))
    return out


def job_row(job: PictureJob) -> AddRow:
    """A job as the row the actors read (the same fields)."""
    return AddRow(**{f.name: getattr(job, f.name) for f in fields(PictureJob)})


def rows_batch(rows: Sequence[AddRow]) -> dict[str, np.ndarray]:
    return {"row": np.array([row.to_json() for row in rows], dtype=object)}


def _probe(address: str) -> None:
    """Refuse at once a HOST:PORT nobody listens on ("auto" is left to Ray: it reads the local node's)."""
    target = address.removeprefix("ray://")
    host, _, port = target.rpartition(":")
    if not host or not port.isdigit():
        return
    try:
        socket.create_connection((host, int(port)), timeout=PROBE_TIMEOUT_S).close()
    except OSError as exc:
        raise EngineUnavailable(f"cannot connect to {target}: {exc.strerror or exc}") from None


class RayAnalysisEngine:
    """The service's BulkAnalysisEngine on a Ray cluster: a pool of ``workers`` Analyzer actors (one CPU
    each), started on first use and kept until ``close``."""

    def __init__(
        self, model: ModelConfig, *, address: str, workers: int, batch_size: int = 16, started_here: bool
    ) -> None:
        self._model = model
        self._address = address
        self._workers = workers
        self._batch_size = batch_size
        self._started_here = started_here  # this engine connected the process to Ray: it disconnects
        self._actors: list[Any] = []
        self._lock = threading.Lock()

    @classmethod
    def connect(cls, settings: Settings, *, batch_size: int = 16) -> RayAnalysisEngine:
        """The EngineConnector for `ray_address`: join the cluster as a driver; one actor per cluster CPU,
        ``batch_size`` pictures per model run. Raises EngineUnavailable when Ray is not installed or the
        cluster cannot be reached."""
        try:
            import ray
        except ImportError:
            raise EngineUnavailable("Ray is not installed (pip install 'lookalike[ray]')") from None
        address = settings.ray_address
        # A process that is a Ray driver already (a test's) keeps its connection; a server is not one.
        started_here = not ray.is_initialized()
        if started_here:
            _probe(address)
            try:
                ray.init(
                    address=address, include_dashboard=False, log_to_driver=False, configure_logging=False
                )
            except Exception as exc:  # Ray raises ConnectionError, RuntimeError, ValueError, ...
                raise EngineUnavailable(f"{type(exc).__name__}: {exc}") from None
        resources: dict[str, float] = ray.cluster_resources()  # type: ignore[no-untyped-call]
        cpus = int(resources.get("CPU", 0))
        if cpus < 1:
            if started_here:
                ray.shutdown()
            raise EngineUnavailable("the cluster has no CPU to run an analysis actor on")
        model = ModelConfig(
            str(settings.models_dir), threads=settings.embed_threads or 1, device=settings.device
        )
        return cls(model, address=address, workers=cpus, batch_size=batch_size, started_here=started_here)

    @property
    def description(self) -> str:
        return f"the Ray cluster at {self._address} ({self._workers} analysis actors)"

    @property
    def jobs_at_once(self) -> int:
        """Two batches for every actor: each has its next batch while the pool hands back the last one."""
        return 2 * self._workers * self._batch_size

    def _pool(self) -> list[Any]:
        import ray

        with self._lock:
            if not self._actors:
                actor = ray.remote(num_cpus=1, max_restarts=-1, max_task_retries=-1)(Analyzer)
                self._actors = [actor.remote(self._model) for _ in range(self._workers)]
            return list(self._actors)

    def analyse(self, jobs: Sequence[PictureJob], options: StorageOptions) -> Iterator[list[Analysed]]:
        from ray.util import ActorPool

        if not jobs:
            return
        pool = ActorPool(self._pool())
        size = self._batch_size
        for n in range(0, len(jobs), size):  # one batch in flight per actor, the rest queued in the pool
            batch = rows_batch([job_row(j) for j in jobs[n : n + size]])
            pool.submit(lambda actor, rows: actor.analyse.remote(rows, options), batch)
        # In the order submitted; TimeoutError when the cluster stopped answering.
        while pool.has_next():  # type: ignore[no-untyped-call]
            yield analysed_rows(pool.get_next(timeout=BATCH_TIMEOUT_S))

    def close(self) -> None:
        import ray

        with self._lock:
            actors, self._actors = self._actors, []
        if not ray.is_initialized():
            return
        for actor in actors:
            ray.kill(actor)
        if self._started_here:
            ray.shutdown()
