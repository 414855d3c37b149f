"""Turn untrusted upload bytes into an RGB image, or refuse with a specific code.

Order matters for safety: byte size first, then the format is identified from
the content (never a file name), then the header dimensions are checked before
any pixel is decoded, so a tiny file claiming 20000x20000 pixels costs nothing.
Only then are the pixels loaded in full; truncated data is an error, never
silently padded.
"""

from __future__ import annotations

import io
import math
import struct
import zlib
from dataclasses import dataclass
from typing import Final

import numpy as np
from PIL import ExifTags, Image, UnidentifiedImageError

from lookalike.domain.errors import (
    INVALID_PIC_CONTENT,
    NO_SPECIFIED_PIC_CONTENT,
    UNSUPPORTED_PIC_FORMAT,
    UNSUPPORTED_PIC_PIXELS,
    LookalikeError,
    pic_too_large,
)
from lookalike.domain.image_limits import ImageLimits

# Pillow plugin ids we accept; PPM's plugin also reads PGM, PBM and PFM. The JPEG
# plugin also opens MPO (a JPEG carrying extra frames, as many phone cameras write).
ACCEPTED_FORMATS: Final[tuple[str, ...]] = ("PNG", "JPEG", "BMP", "GIF", "WEBP", "TIFF", "PPM")

_WHITE: Final = (255, 255, 255, 255)

# A reduced decode (``decode_image(..., reduced=True)``) lets libjpeg scale a JPEG by 1/2, 1/4 or 1/8 while it
# decodes (DCT scaling) as long as the long side stays at least DRAFT_LONG_SIDE and the short side at least
# DRAFT_SHORT_SIDE pixels: everything an add or a search computes works below that (the network's 224 px
# input, ORB at 640 px, thumbnails), and a 12-megapixel photo decodes in ~1/8 of the time (issue 14).
DRAFT_LONG_SIDE: Final = 960
DRAFT_SHORT_SIDE: Final = 224


@dataclass(frozen=True)
class DecodedImage:
    """An RGB image with EXIF orientation applied; width/height are the picture's oriented size, which is
    also the image's unless a reduced decode scaled it down (``scale_x``, ``scale_y`` < 1)."""

    image: Image.Image
    width: int
    height: int
    format: str

    @property
    def scale_x(self) -> float:
        return self.image.width / self.width

    @property
    def scale_y(self) -> float:
        return self.image.height / self.height


DEFAULT_LIMITS: Final = ImageLimits()


def decode_image(data: bytes, limits: ImageLimits = DEFAULT_LIMITS, *, reduced: bool = False) -> DecodedImage:
    """Validate and decode an uploaded picture; raises LookalikeError on refusal. ``reduced``: a large JPEG
    may be decoded scaled down (see ``DRAFT_LONG_SIDE``); the limits apply to its full size."""
    if not data:
        raise LookalikeError(NO_SPECIFIED_PIC_CONTENT, "The picture content is empty.")
    if len(data) > limits.max_bytes:
        raise pic_too_large(limits.max_bytes)

    # WebP's decoder allocates its canvas while Pillow is still opening the file,
    # so its header size must be checked before Image.open.
    webp_size = _webp_header_size(data)
    if webp_size is not None:
        _check_dimensions(*webp_size, limits)

    try:
        img = Image.open(io.BytesIO(data), formats=list(ACCEPTED_FORMATS))
    except Image.DecompressionBombError as exc:
        raise _too_many_pixels(limits) from exc
    except Image.DecompressionBombWarning as exc:  # only reaches us if warnings are errors
        raise _too_many_pixels(limits) from exc
    except UnidentifiedImageError as exc:
        raise _unidentified(data) from exc
    except (OSError, SyntaxError, ValueError, EOFError, struct.error, zlib.error) as exc:
        raise LookalikeError(INVALID_PIC_CONTENT, "The picture is corrupt or truncated.") from exc

    with img:
        fmt = "JPEG" if img.format == "MPO" else (img.format or "unknown")
        # Rotations by 90 degrees only swap the sides and all limits are symmetric
        # in width/height, so the header size decides before any decoding.
        _check_dimensions(img.width, img.height, limits)
        full_size = img.size
        try:
            if reduced and fmt == "JPEG":
                _draft(img)
            drafted = img.size != full_size
            img.load()  # full decode now: lazy errors must surface here, not later
            if drafted and not _scaled_size(img.size, full_size):
                raise LookalikeError(INVALID_PIC_CONTENT, f"The {fmt} picture is corrupt.")
            oriented = _apply_orientation(img)
            rgb = _to_rgb(oriented)
        except LookalikeError:
            raise
        except Image.DecompressionBombError as exc:
            raise _too_many_pixels(limits) from exc
        except (OSError, SyntaxError, ValueError, EOFError, IndexError, struct.error, zlib.error) as exc:
            raise LookalikeError(INVALID_PIC_CONTENT, f"The {fmt} picture is truncated or corrupt.") from exc

    if drafted:
        swapped = oriented.size != img.size  # an EXIF rotation by 90 degrees swaps the sides
        width, height = (full_size[1], full_size[0]) if swapped else full_size
        return DecodedImage(image=rgb, width=width, height=height, format=fmt)
    # Belt and braces: some decoders only learn the real size while decoding.
    _check_dimensions(rgb.width, rgb.height, limits)
    return DecodedImage(image=rgb, width=rgb.width, height=rgb.height, format=fmt)


def _draft(img: Image.Image) -> None:
    """Ask libjpeg for the smallest DCT scale that keeps the long side >= DRAFT_LONG_SIDE and the short side
    >= DRAFT_SHORT_SIDE (no scaling when none does)."""
    width, height = img.size
    long_side, short_side = max(width, height), min(width, height)
    share = max(DRAFT_LONG_SIDE / long_side, DRAFT_SHORT_SIDE / short_side)
    if share > 0.5:
        return
    img.draft("RGB", (math.ceil(width * share), math.ceil(height * share)))


def _scaled_size(size: tuple[int, int], full: tuple[int, int]) -> bool:
    """Whether ``size`` is what libjpeg makes of ``full`` at a scale of 1/2, 1/4 or 1/8."""
    return any(size == (-(-full[0] // d), -(-full[1] // d)) for d in (2, 4, 8))


def _check_dimensions(width: int, height: int, limits: ImageLimits) -> None:
    short, long = sorted((width, height))
    if short < limits.min_side or long > limits.max_side:
        raise LookalikeError(
            UNSUPPORTED_PIC_PIXELS,
            f"The picture is {width}x{height} pixels; each side must be "
            f"{limits.min_side} to {limits.max_side} pixels.",
        )
    if width * height > limits.max_pixels:
        raise _too_many_pixels(limits)


def _too_many_pixels(limits: ImageLimits) -> LookalikeError:
    return LookalikeError(UNSUPPORTED_PIC_PIXELS, f"The picture has more than {limits.max_pixels} pixels.")


def _webp_header_size(data: bytes) -> tuple[int, int] | None:
    """Canvas size from a WebP header (lossy, lossless or extended), or None."""
    if len(data) < 30 or data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        return None
    chunk = data[12:16]
    if chunk == b"VP8 " and data[23:26] == b"\x9d\x01\x2a":
        w, h = struct.unpack_from("<HH", data, 26)
        return w & 0x3FFF, h & 0x3FFF
    if chunk == b"VP8X":
        w = int.from_bytes(data[24:27], "little") + 1
        h = int.from_bytes(data[27:30], "little") + 1
        return w, h
    if chunk == b"VP8L" and data[20] == 0x2F:
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    return None


# Signatures of the formats we accept: bytes that start like one of these but that
# Pillow cannot identify are a corrupt picture, not an unknown format.
_ACCEPTED_MAGIC: Final[tuple[tuple[bytes, str], ...]] = (
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"\xff\xd8\xff", "JPEG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"II+\x00", "TIFF"),
    (b"MM\x00+", "TIFF"),
)

# Recognised formats we refuse; only used to name them in the message.
_REFUSED_MAGIC: Final[tuple[tuple[bytes, str], ...]] = (
    (b"\x00\x00\x01\x00", "ICO"),
    (b"\x00\x00\x02\x00", "CUR"),
    (b"8BPS", "PSD"),
    (b"%PDF", "PDF"),
    (b"%!PS", "PostScript"),
    (b"\xc5\xd0\xd3\xc6", "EPS"),
    (b"icns", "ICNS"),
    (b"qoif", "QOI"),
    (b"\x00\x00\x00\x0cjP  ", "JPEG 2000"),
    (b"\xff\x4f\xff\x51", "JPEG 2000"),
    (b"DDS ", "DDS"),
    (b"<svg", "SVG"),
)


def _unidentified(data: bytes) -> LookalikeError:
    head = data[:16]
    for magic, accepted_name in _ACCEPTED_MAGIC:
        if head.startswith(magic):
            return LookalikeError(INVALID_PIC_CONTENT, f"The {accepted_name} picture is corrupt.")
    # "BM" alone is too weak a signature (plain text can start with it): also need a
    # known DIB header size.
    if head.startswith(b"BM") and len(head) >= 18 and head[14] in (12, 40, 52, 56, 64, 108, 124):
        return LookalikeError(INVALID_PIC_CONTENT, "The BMP picture is corrupt.")
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return LookalikeError(INVALID_PIC_CONTENT, "The WEBP picture is corrupt.")
    if len(head) >= 3 and head[0:1] == b"P" and head[1:2] in b"123456fF" and head[2:3].isspace():
        return LookalikeError(INVALID_PIC_CONTENT, "The PPM picture is corrupt.")
    name: str | None = next((n for magic, n in _REFUSED_MAGIC if head.startswith(magic)), None)
    if name is None and head[4:8] == b"ftyp":
        name = "HEIF/AVIF"
    accepted = ", ".join(ACCEPTED_FORMATS)
    if name is not None:
        return LookalikeError(UNSUPPORTED_PIC_FORMAT, f"{name} pictures are not supported; use {accepted}.")
    return LookalikeError(UNSUPPORTED_PIC_FORMAT, f"The content is not a supported picture ({accepted}).")


_ORIENTATION_TRANSPOSE: Final[dict[int, tuple[Image.Transpose, ...]]] = {
    2: (Image.Transpose.FLIP_LEFT_RIGHT,),
    3: (Image.Transpose.ROTATE_180,),
    4: (Image.Transpose.FLIP_TOP_BOTTOM,),
    5: (Image.Transpose.TRANSPOSE,),
    6: (Image.Transpose.ROTATE_270,),
    7: (Image.Transpose.TRANSVERSE,),
    8: (Image.Transpose.ROTATE_90,),
}


def _apply_orientation(img: Image.Image) -> Image.Image:
    """Apply the EXIF Orientation tag; done by hand so odd EXIF/XMP cannot fail the upload."""
    try:
        orientation = img.getexif().get(ExifTags.Base.Orientation)
    except Exception:  # malformed EXIF is common in the wild: ignore it, keep the pixels
        orientation = None
    steps = _ORIENTATION_TRANSPOSE.get(orientation) if isinstance(orientation, int) else None
    for step in steps or ():
        img = img.transpose(step)
    return img


def _to_rgb(img: Image.Image) -> Image.Image:
    """Convert any decoded mode to 8-bit RGB (a new image, detached from the file)."""
    mode = img.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        return _wide_gray_to_rgb(img)
    if mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in img.info:
        # Transparent areas of product shots are meant as "no background": white, not black.
        rgba = img.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, _WHITE)
        canvas.alpha_composite(rgba)
        return canvas.convert("RGB")
    if mode == "RGB":
        return img.copy()
    try:
        return img.convert("RGB")
    except ValueError as exc:  # e.g. LAB or exotic TIFF photometrics Pillow cannot convert
        raise LookalikeError(
            UNSUPPORTED_PIC_FORMAT, f"Pictures in colour mode {mode} are not supported."
        ) from exc


def _wide_gray_to_rgb(img: Image.Image) -> Image.Image:
    """Scale 16/32-bit or float grey to 8 bits; Pillow's own convert clips instead of scaling."""
    arr = np.asarray(img, dtype=np.float64)
    if img.mode == "F":
        finite = arr[np.isfinite(arr)]
        top = float(finite.max()) if finite.size else 1.0
        scale = 255.0 if top <= 1.0 else 255.0 / top
    elif img.mode == "I" and float(arr.max(initial=0)) <= 255.0:
        scale = 1.0  # 32-bit container holding 8-bit values
    else:
        scale = 255.0 / 65535.0
    gray = np.clip(np.nan_to_num(arr * scale), 0, 255).round().astype(np.uint8)
    return Image.fromarray(gray).convert("RGB")
