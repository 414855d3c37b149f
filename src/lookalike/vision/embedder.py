"""Image embeddings and ImageNet class probabilities from EfficientNet-Lite0 (ONNX Runtime, CPU).

Feature choice (measured by ``bench/feature_choice.py``, results in
``bench/results/feature_choice.json``)
---------------------------------------------------------------------------------------------
Chosen: **GeM pooling (p=3) of the final 1280x7x7 ReLU6 feature map, L2-normalized**, on the
whole image squashed to 224x224 (``MODEL_ID = "efficientnet-lite0:squash224-gem3-l2:v1"``).

Task: 22 offline photos from scikit-image x 6 edits (central 70% crop, JPEG q20, 50% resize,
grayscale, 10° rotation with expanded black canvas, 40 px white border with text) = 132 queries,
searched by cosine against the 22 originals. R@1+d also puts the 126 edits of the other
originals into the database as distractors. Margin = true score minus best wrong score.

=============================  =====  =====  ==========  ===========
feature                        R@1    R@1+d  min margin  mean margin
=============================  =====  =====  ==========  ===========
squash / avg (GAP)             0.992  0.924     -0.042        0.514
squash / avg, sqrt-normalized  1.000  0.939      0.004        0.404
squash / GeM p=2               1.000  0.939      0.027        0.466
**squash / GeM p=3**           1.000  0.939      0.044        0.442
squash / GeM p=4               1.000  0.939      0.050        0.429
squash / max (MAC)             1.000  0.939      0.022        0.392
squash / avg ++ max            1.000  0.939      0.004        0.457
squash / softmax probs         0.917  0.758     -0.403        0.551
center crop / avg              0.992  0.955     -0.143        0.518
center crop / GeM p=3          0.992  0.939     -0.026        0.442
center crop / max              1.000  0.939      0.013        0.391
squash+center crop, GeM mean   0.992  0.939     -0.026        0.444
trim uniform border + center   1.000  0.962      0.030        0.448
crop / GeM p=3
=============================  =====  =====  ==========  ===========

GeM p=3 and p=4 are the only features with a clear positive worst-case margin; p=3 keeps the
larger mean margin, so it wins. Squashing beats centre-cropping because a centre crop throws
away the very borders that distinguish a bordered or rotated copy, and the hardest query
(the 102 px ``microaneurysms`` with a 40 px text border) needs the whole frame. Trimming
uniform borders before embedding helped the distractor setting slightly, but with squashing
it made a crop miss (an original's natural dark surround is trimmed differently from its
crop's) and it never beat the untrimmed worst-case margin, so it is not used. Remaining misses in
R@1+d are same-edit collisions between grayscale textures (grass/gravel rotated or bordered):
edit artefacts dominate global descriptors of low-content images.

Speed, 2 intra-op threads on the shared 2-core development machine (best of N / median):
network alone 5.7 / 6.2 ms at batch 1 and 4.5 / 5.6 ms per image at batch 16; a whole
``embed`` of a 451x300 photo 5.9 / 6.3 ms at batch 1 and 6.2 / 8.1 ms per image at batch 16.
Preprocessing is 1-3 ms per typical photo, up to 7 ms for a 1411x1411 input. While other jobs
loaded the machine, the same calls measured 20-40 ms per image.

Preprocessing: convert to RGB, squash the whole image (no crop) to 224x224 with PIL bilinear
(antialiased, ``reducing_gap=3``), then ``(pixel - 127) / 128`` per channel: the TF-Lite
EfficientNet normalization these weights were trained with (see
:mod:`lookalike.vision.efficientnet`).
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Final, Literal, Protocol

import numpy as np
import numpy.typing as npt
import onnxruntime as ort
from PIL import Image
from threadpoolctl import threadpool_limits

from lookalike.vision import efficientnet as enet

__all__ = [
    "EfficientNetEmbedder",
    "EmbedResult",
    "ImageEmbedder",
    "ImageModel",
    "MicroBatcher",
    "ResizeMode",
    "gem_pool",
    "l2_normalize",
    "preprocess",
    "softmax",
]

FloatArray = npt.NDArray[np.float32]
ResizeMode = Literal["squash", "center_crop"]
Device = Literal["auto", "cpu", "cuda"]
CUDA_PROVIDER = "CUDAExecutionProvider"
CPU_PROVIDER = "CPUExecutionProvider"
# Most pictures in one session run: activations are ~5 MB per picture, so a GPU (and the micro-batcher in
# front of it) takes far bigger batches than a CPU, where 32 already keeps the threads busy.
MAX_BATCH: Final[dict[str, int]] = {"cpu": 32, "cuda": 128}

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EmbedResult:
    """``vectors``: (n, DIM) float32, L2-normalized. ``class_probs``: (n, 1000) float32 softmax."""

    vectors: FloatArray
    class_probs: FloatArray

    def __len__(self) -> int:
        return int(self.vectors.shape[0])


class ImageEmbedder(Protocol):
    """What :class:`MicroBatcher` needs; any embedder (or a test double) satisfies it."""

    def embed(self, images: Sequence[Image.Image]) -> EmbedResult: ...


class ImageModel(ABC):
    """Immich-style model base: ``load()`` once (idempotent, thread-safe), ``predict()`` many.

    Subclasses implement ``_load`` and ``_predict``; ``predict`` loads lazily so a caller that
    forgot ``load()`` still works (the first request just pays the load time).
    """

    MODEL_ID: ClassVar[str]
    DIM: ClassVar[int]

    def __init__(self) -> None:
        self._load_lock = threading.Lock()
        self._loaded = False

    @property
    def loaded(self) -> bool:
        return self._loaded

    def load(self) -> None:
        if self._loaded:
            return
        with self._load_lock:
            if not self._loaded:
                self._load()
                self._loaded = True

    def predict(self, images: Sequence[Image.Image]) -> EmbedResult:
        self.load()
        return self._predict(images)

    def embed(self, images: Sequence[Image.Image]) -> EmbedResult:
        return self.predict(images)

    @abstractmethod
    def _load(self) -> None: ...

    @abstractmethod
    def _predict(self, images: Sequence[Image.Image]) -> EmbedResult: ...


# --------------------------------------------------------------------------------------------
# Numerics shared with the benchmark
# --------------------------------------------------------------------------------------------


def preprocess(
    images: Sequence[Image.Image],
    mode: ResizeMode = "squash",
    size: int = enet.IMAGE_SIZE,
) -> FloatArray:
    """Images -> float32 NCHW batch normalized for the network."""
    out = np.empty((len(images), 3, size, size), dtype=np.float32)
    for i, img in enumerate(images):
        if img.mode != "RGB":
            img = img.convert("RGB")
        w, h = img.size
        if mode == "center_crop":
            scale = size / min(w, h)
            nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
            left, top = (nw - size) // 2, (nh - size) // 2
            # resize with box= crops and scales in one resampling pass.
            box = (left / scale, top / scale, (left + size) / scale, (top + size) / scale)
            img = img.resize((size, size), Image.Resampling.BILINEAR, box=box, reducing_gap=3.0)
        else:
            img = img.resize((size, size), Image.Resampling.BILINEAR, reducing_gap=3.0)
        arr = np.asarray(img, dtype=np.float32)
        out[i] = ((arr - enet.INPUT_MEAN) / enet.INPUT_STD).transpose(2, 0, 1)
    return out


def _open_session(
    path: Path, opts: ort.SessionOptions, device: Device
) -> tuple[ort.InferenceSession, Literal["cpu", "cuda"]]:
    """An ONNX Runtime session on ``device``: CUDA when asked (or ``auto``) and onnxruntime-gpu can run it
    (the package is there and a GPU answers), else CPU; ``cuda`` asked for and absent is logged as a
    warning, never an error, so a server configured for a GPU still starts without one."""
    cpu_only = [CPU_PROVIDER]
    if device != "cpu" and CUDA_PROVIDER in ort.get_available_providers():
        try:
            session = ort.InferenceSession(str(path), sess_options=opts, providers=[CUDA_PROVIDER, *cpu_only])
            if CUDA_PROVIDER in session.get_providers():
                return session, "cuda"
            reason = "ONNX Runtime found no usable GPU"
        except Exception as exc:  # a driver or CUDA library mismatch: the CPU still works
            reason = f"the CUDA provider failed to start ({exc})"
    else:
        reason = "onnxruntime-gpu is not installed"
    if device == "cuda":
        log.warning("device = cuda was asked for, but %s: running the image model on the CPU", reason)
    return ort.InferenceSession(str(path), sess_options=opts, providers=cpu_only), "cpu"


def limit_blas_threads() -> None:
    """One BLAS thread for numpy in this process. Its small products (the reduction of a request's views, a
    shortlist's cosines) gain nothing from more, and BLAS threads that wake next to ONNX Runtime's own
    oversubscribe the cores: the reduction of four views took a median 30 ms instead of 0.35 ms on the
    2-core box while searches ran (bench/e2e_bench.py's stage table, issue 14). The variables reach BLAS
    libraries loaded later (they read them when they load), threadpoolctl those loaded already."""
    for variable in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[variable] = "1"
    threadpool_limits(limits=1, user_api="blas")


def l2_normalize(x: FloatArray, eps: float = 1e-12) -> FloatArray:
    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    return np.asarray(x / np.maximum(norm, eps), dtype=np.float32)


def gem_pool(features: FloatArray, p: float = 3.0, eps: float = 1e-6) -> FloatArray:
    """Generalized-mean pooling over H, W of an (N, C, H, W) non-negative feature map."""
    clipped = np.maximum(features, eps)
    pooled = np.mean(clipped**p, axis=(2, 3))
    return np.asarray(np.power(pooled, 1.0 / p), dtype=np.float32)


def softmax(logits: FloatArray) -> FloatArray:
    z = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return np.asarray(e / e.sum(axis=-1, keepdims=True), dtype=np.float32)


# --------------------------------------------------------------------------------------------
# The embedder
# --------------------------------------------------------------------------------------------


class EfficientNetEmbedder(ImageModel):
    """EfficientNet-Lite0 embeddings; see the module docstring for the measured feature choice.

    ``cache_dir`` is where the ONNX graph is cached (normally ``<data_dir>/models``).
    ``intra_op_threads``: ONNX Runtime threads per inference; default ``min(4, cpu_count)``.
    """

    MODEL_ID: ClassVar[str] = "efficientnet-lite0:squash224-gem3-l2:v1"
    DIM: ClassVar[int] = enet.FEATURE_CHANNELS
    GEM_P: ClassVar[float] = 3.0
    RESIZE: ClassVar[ResizeMode] = "squash"

    def __init__(self, cache_dir: Path, intra_op_threads: int | None = None, device: Device = "cpu") -> None:
        super().__init__()
        self.cache_dir = Path(cache_dir)
        self.intra_op_threads = (
            intra_op_threads if intra_op_threads is not None else min(4, os.cpu_count() or 1)
        )
        self.requested_device: Device = device
        self.device: Literal["cpu", "cuda"] = "cpu"  # where it runs, known once loaded
        self._session: ort.InferenceSession | None = None
        self.model_path: Path | None = None

    @property
    def max_batch(self) -> int:
        """Most pictures in one session run on the device it runs on."""
        return MAX_BATCH[self.device]

    def _load(self) -> None:
        self.model_path = enet.ensure_onnx_model(self.cache_dir)
        limit_blas_threads()
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = self.intra_op_threads
        # Spin-waiting threads burn the cores that decoding, cropping and HTTP need between runs
        # (bench: the network alone went from 56 to 98 images/s on 2 cores with spinning off).
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self._session, self.device = _open_session(self.model_path, opts, self.requested_device)
        log.info(
            "image model %s on %s (%s)", self.MODEL_ID, self.device, ", ".join(self._session.get_providers())
        )

    def forward(self, batch: FloatArray) -> tuple[FloatArray, FloatArray]:
        """Run the network on a preprocessed batch: (feature map (N,1280,7,7), logits (N,1000))."""
        self.load()
        assert self._session is not None
        # InferenceSession.run is thread-safe, so concurrent callers need no lock here.
        outs: list[Any] = self._session.run(
            [enet.OUTPUT_FEATURES, enet.OUTPUT_LOGITS], {enet.INPUT_NAME: batch}
        )
        return np.asarray(outs[0], np.float32), np.asarray(outs[1], np.float32)

    def pool(self, features: FloatArray) -> FloatArray:
        """Feature map -> L2-normalized embedding (the measured choice)."""
        return l2_normalize(gem_pool(features, self.GEM_P))

    def _predict(self, images: Sequence[Image.Image]) -> EmbedResult:
        vecs: list[FloatArray] = []
        probs: list[FloatArray] = []
        for start in range(0, len(images), self.max_batch):
            chunk = images[start : start + self.max_batch]
            feats, logits = self.forward(preprocess(chunk, self.RESIZE))
            vecs.append(self.pool(feats))
            probs.append(softmax(logits))
        if not vecs:
            return EmbedResult(
                np.zeros((0, self.DIM), np.float32), np.zeros((0, enet.NUM_CLASSES), np.float32)
            )
        return EmbedResult(np.concatenate(vecs), np.concatenate(probs))


# --------------------------------------------------------------------------------------------
# Micro-batching for concurrent single-image requests
# --------------------------------------------------------------------------------------------


@dataclass
class _Request:
    image: Image.Image
    future: Future[tuple[FloatArray, FloatArray]]


_STOP = object()


class MicroBatcher:
    """Coalesces concurrent ``embed_one`` calls into batched ``embed`` calls.

    One worker thread takes the first pending request, then keeps collecting until it has
    ``max_batch`` requests or ``max_wait_ms`` has passed since the first, and runs a single
    ``embed``. Batching amortizes per-call overhead and lets ONNX Runtime use its threads on
    bigger GEMMs; the wait bound caps the latency a lone request pays.

    If a batched call fails, the batch is retried image by image so that one bad image fails
    only its own caller; each caller gets its own exception.
    """

    def __init__(self, embedder: ImageEmbedder, max_batch: int = 16, max_wait_ms: float = 3.0) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be >= 1")
        self.embedder = embedder
        # Told (pictures, seconds) after every run of the model (lookalike.observability wires its metrics).
        self.on_batch: Callable[[int, float], None] | None = None
        self.max_batch = max_batch
        self.max_wait_s = max(0.0, max_wait_ms) / 1000.0
        self._queue: queue.SimpleQueue[_Request | object] = queue.SimpleQueue()
        self._closed = False
        self._close_lock = threading.Lock()
        self._worker = threading.Thread(target=self._run, name="lookalike-embed-batcher", daemon=True)
        self._worker.start()

    def embed_one(self, image: Image.Image) -> tuple[FloatArray, FloatArray]:
        """Embed one image; returns (vector (DIM,), class_probs (1000,)). Blocks until done."""
        fut: Future[tuple[FloatArray, FloatArray]] = Future()
        with self._close_lock:
            # Checked under the lock so no request can slip in behind the stop marker.
            if self._closed:
                raise RuntimeError("MicroBatcher is closed")
            self._queue.put(_Request(image, fut))
        return fut.result()

    def embed_several(self, images: Sequence[Image.Image]) -> EmbedResult:
        """Several images of one request (the views of a search), queued together, so they share a batch
        with each other and with concurrent requests. Blocks until all are done."""
        futures: list[Future[tuple[FloatArray, FloatArray]]] = []
        with self._close_lock:
            if self._closed:
                raise RuntimeError("MicroBatcher is closed")
            for image in images:
                fut: Future[tuple[FloatArray, FloatArray]] = Future()
                self._queue.put(_Request(image, fut))
                futures.append(fut)
        done = [f.result() for f in futures]
        if not done:
            return EmbedResult(np.zeros((0, 0), np.float32), np.zeros((0, 0), np.float32))
        return EmbedResult(np.stack([v for v, _ in done]), np.stack([p for _, p in done]))

    def embed_many(self, images: Sequence[Image.Image]) -> EmbedResult:
        """Bulk path: already batched, so it skips the queue and calls the embedder directly."""
        if self._closed:
            raise RuntimeError("MicroBatcher is closed")
        return self._timed_embed(images)

    def _timed_embed(self, images: Sequence[Image.Image]) -> EmbedResult:
        started = time.perf_counter()
        result = self.embedder.embed(images)
        if self.on_batch is not None:
            self.on_batch(len(images), time.perf_counter() - started)
        return result

    def close(self, timeout: float | None = 10.0) -> None:
        """Stop the worker after it has served every request queued before the call."""
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
            self._queue.put(_STOP)
        self._worker.join(timeout)

    def __enter__(self) -> MicroBatcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _run(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is _STOP:
                return
            assert isinstance(first, _Request)
            batch = [first]
            deadline = time.monotonic() + self.max_wait_s
            while len(batch) < self.max_batch:
                remaining = deadline - time.monotonic()
                try:
                    item = self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    stopping = True  # serve what we have, then exit
                    break
                assert isinstance(item, _Request)
                batch.append(item)
            self._serve(batch)

    def _serve(self, batch: list[_Request]) -> None:
        live = [r for r in batch if r.future.set_running_or_notify_cancel()]
        if not live:
            return
        try:
            res = self._timed_embed([r.image for r in live])
            if len(res) != len(live):
                raise RuntimeError(f"embedder returned {len(res)} results for {len(live)} images")
        except Exception as exc:
            if len(live) == 1:
                live[0].future.set_exception(exc)
                return
            for r in live:  # isolate the failing image(s)
                try:
                    one = self.embedder.embed([r.image])
                    r.future.set_result((one.vectors[0], one.class_probs[0]))
                except Exception as exc1:
                    r.future.set_exception(exc1)
            return
        for i, r in enumerate(live):
            r.future.set_result((res.vectors[i], res.class_probs[i]))
