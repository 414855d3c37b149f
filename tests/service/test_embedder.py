"""EfficientNet-Lite0 embedder on the real weights: graph build, outputs, micro-batching."""

from __future__ import annotations

import logging
import pickle
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lookalike.vision import efficientnet as enet
from lookalike.vision.categories import imagenet_class_names
from lookalike.vision.embedder import EfficientNetEmbedder, EmbedResult, MicroBatcher

skdata = pytest.importorskip("skimage.data")

CAT_CLASSES = range(281, 286)  # tabby, tiger cat, Persian, Siamese, Egyptian Mau


def photo(name: str) -> Image.Image:
    return Image.fromarray(np.asarray(getattr(skdata, name)())).convert("RGB")


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("vision-models")


@pytest.fixture(scope="module")
def embedder(cache_dir: Path) -> EfficientNetEmbedder:
    emb = EfficientNetEmbedder(cache_dir, intra_op_threads=2)
    emb.load()
    return emb


@pytest.fixture(scope="module")
def photos() -> list[Image.Image]:
    return [
        photo(n) for n in ("chelsea", "coffee", "astronaut", "rocket", "camera", "moon", "coins", "brick")
    ]


def test_graph_builds_without_torch(tmp_path: Path) -> None:
    # A fresh interpreter where `import torch` fails: run-time code must never need it.
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "from lookalike.vision.efficientnet import ensure_onnx_model\n"
        f"p = ensure_onnx_model({str(tmp_path)!r})\n"
        "import onnx; m = onnx.load(str(p)); onnx.checker.check_model(m)\n"
        "print(p.name)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    name = out.stdout.strip()
    assert name.startswith("efficientnet-lite0-") and name.endswith(".onnx")
    assert [p.name for p in tmp_path.iterdir()] == [name]  # no temp file left behind


def test_cache_is_reused(cache_dir: Path, embedder: EfficientNetEmbedder) -> None:
    assert embedder.model_path is not None
    before = embedder.model_path.stat().st_mtime_ns
    assert enet.ensure_onnx_model(cache_dir) == embedder.model_path
    assert embedder.model_path.stat().st_mtime_ns == before


def test_state_dict_reader() -> None:
    sd = enet.read_legacy_state_dict(enet.default_weights_path())
    assert sd["_conv_stem.weight"].shape == (32, 3, 3, 3)
    assert sd["_fc.weight"].shape == (1000, 1280) and sd["_fc.weight"].dtype == np.float32
    assert sd["_bn0.num_batches_tracked"].shape == ()
    assert sum(1 for k in sd if k.endswith("_depthwise_conv.weight")) == 16


def test_reader_refuses_arbitrary_globals(tmp_path: Path) -> None:
    bad = tmp_path / "evil.pth"
    with open(bad, "wb") as f:
        for header in (0x1950A86A20F9469CFC6C, 1001, {"little_endian": True}):
            pickle.dump(header, f)
        pickle.dump({"x": print}, f)  # builtins.print: any non-tensor global must be refused
    with pytest.raises(pickle.UnpicklingError):
        enet.read_legacy_state_dict(bad)


def test_output_shapes_and_norms(embedder: EfficientNetEmbedder, photos: list[Image.Image]) -> None:
    res = embedder.embed(photos)
    assert res.vectors.shape == (len(photos), EfficientNetEmbedder.DIM) == (len(photos), 1280)
    assert res.class_probs.shape == (len(photos), 1000)
    assert res.vectors.dtype == np.float32 and res.class_probs.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(res.vectors, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(res.class_probs.sum(axis=1), 1.0, atol=1e-4)
    assert (res.class_probs >= 0).all()
    empty = embedder.embed([])
    assert empty.vectors.shape == (0, 1280) and empty.class_probs.shape == (0, 1000)


def test_raw_graph_outputs(embedder: EfficientNetEmbedder) -> None:
    feats, logits = embedder.forward(np.zeros((2, 3, 224, 224), np.float32))
    assert feats.shape == (2, 1280, 7, 7) and logits.shape == (2, 1000)
    assert feats.min() >= 0.0 and feats.max() <= 6.0  # ReLU6 output


def test_identical_image_scores_one(embedder: EfficientNetEmbedder, photos: list[Image.Image]) -> None:
    a = embedder.embed([photos[0]]).vectors[0]
    b = embedder.embed([photos[0].copy()]).vectors[0]
    assert float(a @ b) == pytest.approx(1.0, abs=1e-5)
    # Batch composition must not change a vector.
    c = embedder.embed([photos[2], photos[0], photos[1]]).vectors[1]
    np.testing.assert_allclose(a, c, atol=1e-5)
    others = embedder.embed(photos[1:]).vectors
    assert float((others @ a).max()) < 0.9


def test_non_rgb_inputs_are_converted(embedder: EfficientNetEmbedder, photos: list[Image.Image]) -> None:
    gray = photos[4].convert("L")
    rgba = photos[0].convert("RGBA")
    res = embedder.embed([gray, rgba])
    assert res.vectors.shape == (2, 1280)
    ref = embedder.embed([photos[0]]).vectors[0]
    assert float(res.vectors[1] @ ref) == pytest.approx(1.0, abs=1e-5)


def test_chelsea_is_a_cat(embedder: EfficientNetEmbedder, photos: list[Image.Image]) -> None:
    probs = embedder.embed([photos[0]]).class_probs[0]
    top = int(np.argmax(probs))
    assert top in CAT_CLASSES, imagenet_class_names()[top]
    assert probs[list(CAT_CLASSES)].sum() > 0.7
    coffee = embedder.embed([photos[1]]).class_probs[0]
    assert imagenet_class_names()[int(np.argmax(coffee))] == "espresso"


# ---- micro-batcher ---------------------------------------------------------------------------


class RecordingEmbedder:
    """Real embedder that remembers batch sizes and refuses images marked as poisoned."""

    def __init__(self, inner: EfficientNetEmbedder) -> None:
        self.inner = inner
        self.batch_sizes: list[int] = []
        self._lock = threading.Lock()

    def embed(self, images: Sequence[Image.Image]) -> EmbedResult:
        with self._lock:
            self.batch_sizes.append(len(images))
        if any(im.info.get("poison") for im in images):
            raise ValueError("poisoned image")
        return self.inner.embed(images)


def run_concurrently(batcher: MicroBatcher, images: list[Image.Image]) -> list[object]:
    results: list[object] = [None] * len(images)
    start = threading.Barrier(len(images))

    def work(i: int) -> None:
        start.wait()
        try:
            results[i] = batcher.embed_one(images[i])
        except Exception as exc:
            results[i] = exc

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(images))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results


@pytest.fixture
def recording(embedder: EfficientNetEmbedder) -> RecordingEmbedder:
    return RecordingEmbedder(embedder)


@pytest.fixture
def batcher(recording: RecordingEmbedder) -> Iterator[MicroBatcher]:
    # A generous wait so the 8 threads reliably land in shared batches on a busy machine.
    b = MicroBatcher(recording, max_batch=16, max_wait_ms=200)
    yield b
    b.close()


def test_microbatcher_matches_one_by_one(
    embedder: EfficientNetEmbedder,
    photos: list[Image.Image],
    batcher: MicroBatcher,
    recording: RecordingEmbedder,
) -> None:
    expected = [embedder.embed([im]) for im in photos]
    results = run_concurrently(batcher, photos)
    for res, exp in zip(results, expected, strict=True):
        assert isinstance(res, tuple), res
        vec, probs = res
        np.testing.assert_allclose(vec, exp.vectors[0], atol=1e-5)
        np.testing.assert_allclose(probs, exp.class_probs[0], atol=1e-5)
    assert sum(recording.batch_sizes) == len(photos)
    assert max(recording.batch_sizes) > 1  # requests were actually coalesced


def test_microbatcher_error_reaches_only_its_caller(
    embedder: EfficientNetEmbedder, photos: list[Image.Image], batcher: MicroBatcher
) -> None:
    images = [im.copy() for im in photos]
    images[3].info["poison"] = True
    results = run_concurrently(batcher, images)
    assert isinstance(results[3], ValueError)
    for i, res in enumerate(results):
        if i != 3:
            assert isinstance(res, tuple), res
            np.testing.assert_allclose(res[0], embedder.embed([images[i]]).vectors[0], atol=1e-5)


def test_microbatcher_real_embedder_error_propagates(embedder: EfficientNetEmbedder) -> None:
    with MicroBatcher(embedder) as b:
        with pytest.raises(AttributeError):
            b.embed_one("not an image")  # type: ignore[arg-type]
        vec, probs = b.embed_one(Image.new("RGB", (64, 48), (10, 200, 30)))
        assert vec.shape == (1280,) and probs.shape == (1000,)


def test_microbatcher_embed_many_and_close(embedder: EfficientNetEmbedder, photos: list[Image.Image]) -> None:
    b = MicroBatcher(embedder, max_batch=4)
    many = b.embed_many(photos)
    np.testing.assert_allclose(many.vectors, embedder.embed(photos).vectors, atol=1e-5)
    b.close()
    b.close()  # idempotent
    with pytest.raises(RuntimeError):
        b.embed_one(photos[0])
    with pytest.raises(RuntimeError):
        b.embed_many(photos)


def test_a_loaded_model_leaves_numpy_one_blas_thread(embedder: EfficientNetEmbedder) -> None:
    """numpy's BLAS threads next to ONNX Runtime's oversubscribe the cores (lookalike.vision.embedder)."""
    from threadpoolctl import threadpool_info

    blas = [pool for pool in threadpool_info() if pool["user_api"] == "blas"]
    assert blas and all(pool["num_threads"] == 1 for pool in blas)


def test_cuda_asked_for_without_a_gpu_runs_on_the_cpu_and_says_so(
    cache_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """This machine has no onnxruntime-gpu (CI's neither): ``device = cuda`` must still start, on the CPU,
    with a warning that says why; ``auto`` picks the CPU without one."""
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("onnxruntime-gpu is installed here: the fallback is not what runs")
    with caplog.at_level(logging.INFO, logger="lookalike.vision.embedder"):
        asked = EfficientNetEmbedder(cache_dir, intra_op_threads=1, device="cuda")
        asked.load()
    assert asked.device == "cpu" and asked.max_batch == 32
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "device = cuda was asked for" in warnings[0].getMessage()
    assert "onnxruntime-gpu is not installed" in warnings[0].getMessage()
    assert any("on cpu (CPUExecutionProvider)" in r.getMessage() for r in caplog.records)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="lookalike.vision.embedder"):
        auto = EfficientNetEmbedder(cache_dir, intra_op_threads=1, device="auto")
        auto.load()
    assert auto.device == "cpu" and not [r for r in caplog.records if r.levelno == logging.WARNING]
    assert auto.embed([photo("coffee")]).vectors.shape == (1, EfficientNetEmbedder.DIM)


def test_the_device_setting_takes_auto_cpu_or_cuda() -> None:
    from lookalike.config import Settings

    assert Settings.from_env({"LOOKALIKE_DEVICE": "cuda"}).device == "cuda"
    assert Settings.from_env({}).device == "auto"
    with pytest.raises(ValueError, match="LOOKALIKE_DEVICE"):
        Settings.from_env({"LOOKALIKE_DEVICE": "tpu"})
