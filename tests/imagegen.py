"""Deterministic test pictures, made with Pillow and numpy at test time."""

from __future__ import annotations

import functools
import io
import struct
import zlib
from typing import Any

import numpy as np
from PIL import Image, ImageDraw


def photo_array(w: int, h: int, seed: int = 0) -> np.ndarray:
    """A textured, natural-looking RGB array: smooth colour fields plus detail at several scales."""
    rng = np.random.default_rng(seed)
    out = np.zeros((h, w, 3), dtype=np.float64)
    for cells, weight in ((3, 90.0), (9, 50.0), (27, 30.0), (81, 15.0)):
        grid = rng.uniform(-1.0, 1.0, size=(cells + 1, cells + 1, 3)).astype(np.float32)
        for c in range(3):  # Pillow resizes float images one band at a time
            band = Image.fromarray(grid[:, :, c]).resize((w, h), Image.Resampling.BICUBIC)
            out[:, :, c] += weight * np.asarray(band, dtype=np.float64)
    out += rng.normal(0.0, 6.0, size=out.shape)  # sensor-like grain
    out += np.array([128.0, 120.0, 110.0])
    return np.clip(out, 0, 255).astype(np.uint8)


def photo_image(w: int, h: int, seed: int = 0) -> Image.Image:
    """photo_array plus a few hard-edged shapes, as real scenes have edges, not only texture."""
    img = Image.fromarray(photo_array(w, h, seed), "RGB")
    rng = np.random.default_rng(seed + 1000)
    draw = ImageDraw.Draw(img)
    for _ in range(6):
        cx, cy = rng.uniform(0, w), rng.uniform(0, h)
        rx, ry = rng.uniform(0.03, 0.15) * w, rng.uniform(0.03, 0.15) * h
        colour = tuple(int(v) for v in rng.integers(20, 236, size=3))
        shape = draw.ellipse if rng.random() < 0.5 else draw.rectangle
        shape((cx - rx, cy - ry, cx + rx, cy + ry), fill=colour)
    return img


def encode(img: Image.Image, fmt: str, **save_kwargs: Any) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **save_kwargs)
    return buf.getvalue()


def make_photo(w: int, h: int, seed: int = 0, fmt: str = "JPEG", **save_kwargs: Any) -> bytes:
    """Encoded textured photo; JPEG at quality 90 unless told otherwise."""
    if fmt == "JPEG":
        save_kwargs.setdefault("quality", 90)
    return encode(photo_image(w, h, seed), fmt, **save_kwargs)


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


@functools.lru_cache(maxsize=4)
def png_bomb(w: int = 20000, h: int = 20000) -> bytes:
    """A valid 1-bit greyscale PNG of w x h zero pixels that is only kilobytes long."""
    row = b"\x00" * (1 + (w + 7) // 8)  # filter byte + packed bits
    comp = zlib.compressobj(9)
    chunks: list[bytes] = []
    block = row * 256
    full, rest = divmod(h, 256)
    for _ in range(full):
        chunks.append(comp.compress(block))
    chunks.append(comp.compress(row * rest))
    chunks.append(comp.flush())
    ihdr = struct.pack(">IIBBBBB", w, h, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", b"".join(chunks))
        + _png_chunk(b"IEND", b"")
    )


def truncated_jpeg(w: int = 400, h: int = 300, keep: float = 0.6) -> bytes:
    data = make_photo(w, h, seed=7)
    return data[: int(len(data) * keep)]


def orientation_test_image(w: int = 300, h: int = 150) -> Image.Image:
    """Grey image with a red block in the top-left corner, to see where rotation puts it."""
    img = Image.new("RGB", (w, h), (128, 128, 128))
    img.paste((255, 0, 0), (0, 0, w // 4, h // 4))
    return img


def exif_rotated_jpeg(orientation: int = 6, w: int = 300, h: int = 150) -> bytes:
    """JPEG stored as w x h with the EXIF Orientation tag set."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encode(orientation_test_image(w, h), "JPEG", quality=95, exif=exif.tobytes())


def incompressible_png(min_bytes: int = 5 * 1024 * 1024, seed: int = 3) -> bytes:
    """A real PNG of random noise at least min_bytes long (noise does not compress)."""
    side = int((min_bytes / 3) ** 0.5) + 64
    rng = np.random.default_rng(seed)
    data = encode(Image.fromarray(rng.integers(0, 256, size=(side, side, 3), dtype=np.uint8)), "PNG")
    assert len(data) >= min_bytes
    return data


def object_on_background(
    w: int,
    h: int,
    box: tuple[int, int, int, int],
    background: tuple[int, int, int] = (255, 255, 255),
    seed: int = 0,
) -> Image.Image:
    """A textured object filling box (x1, y1, x2, y2) on a uniform background."""
    x1, y1, x2, y2 = box
    img = Image.new("RGB", (w, h), background)
    obj = photo_image(x2 - x1, y2 - y1, seed)
    img.paste(obj, (x1, y1))
    return img


def iou(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> float:
    """Intersection over union of two (x1, y1, x2, y2) boxes."""
    ix = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    area = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / area if area else 0.0
