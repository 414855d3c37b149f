"""Real photos that ship inside installed packages (scikit-image), and the edits the near-duplicate
tests apply to them. Nothing is downloaded."""

from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np
from PIL import Image, ImageDraw, ImageOps

# skimage.data images that load offline. `cat` is left out: it is the same photo as `chelsea`;
# so is `motorcycle_right`, the other half of the stereo pair whose left view is used.
PHOTO_NAMES = (
    "astronaut",
    "brick",
    "camera",
    "cell",
    "chelsea",
    "clock",
    "coffee",
    "coins",
    "colorwheel",
    "grass",
    "gravel",
    "horse",
    "hubble_deep_field",
    "immunohistochemistry",
    "logo",
    "microaneurysms",
    "moon",
    "motorcycle_left",
    "page",
    "retina",
    "rocket",
    "text",
)


def load_photo(name: str) -> Image.Image:
    import skimage.data

    array = (
        skimage.data.stereo_motorcycle()[0] if name == "motorcycle_left" else getattr(skimage.data, name)()
    )
    if array.dtype == bool:
        array = array.astype(np.uint8) * 255
    elif array.dtype != np.uint8:
        array = (np.clip(array, 0, 1) * 255).astype(np.uint8)
    image = Image.fromarray(array)
    if image.mode == "RGBA":
        background = Image.new("RGB", image.size, (255, 255, 255))
        background.paste(image, mask=image.getchannel("A"))
        image = background
    image = image.convert("RGB")
    # Keep every side, and every edit's (a 70% crop), within the service limits (100-4096 px).
    if min(image.size) < 150:
        scale = 150 / min(image.size)
        image = image.resize(
            (round(image.width * scale), round(image.height * scale)), Image.Resampling.BICUBIC
        )
    return image


def sample_photos() -> dict[str, Image.Image]:
    return {name: load_photo(name) for name in PHOTO_NAMES}


def encode(image: Image.Image, fmt: str = "JPEG", **options: object) -> bytes:
    buffer = io.BytesIO()
    if fmt == "JPEG" and "quality" not in options:
        options["quality"] = 92
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def crop_70(image: Image.Image) -> Image.Image:
    w, h = image.size
    dw, dh = round(w * 0.15), round(h * 0.15)
    return image.crop((dw, dh, w - dw, h - dh))


def jpeg_q20(image: Image.Image) -> Image.Image:
    return Image.open(io.BytesIO(encode(image, "JPEG", quality=20))).convert("RGB")


def resize_50(image: Image.Image) -> Image.Image:
    w, h = image.size
    small = image.resize((max(1, w // 2), max(1, h // 2)), Image.Resampling.LANCZOS)
    if min(small.size) < 100:  # stay above the service's minimum side by upscaling back
        small = small.resize((w, h), Image.Resampling.BICUBIC)
    return small


def grayscale(image: Image.Image) -> Image.Image:
    return ImageOps.grayscale(image).convert("RGB")


def rotate_10(image: Image.Image) -> Image.Image:
    return image.rotate(10, resample=Image.Resampling.BICUBIC, expand=True, fillcolor=(255, 255, 255))


def border_with_text(image: Image.Image) -> Image.Image:
    w, h = image.size
    pad = max(20, min(w, h) // 8)
    framed = ImageOps.expand(image, border=pad, fill=(255, 255, 255))
    draw = ImageDraw.Draw(framed)
    draw.text((pad, 4), "SALE -50% www.example.shop", fill=(200, 0, 0))
    draw.text((pad, h + pad + 4), "Lookalike test border", fill=(0, 0, 0))
    return framed


EDITS: dict[str, Callable[[Image.Image], Image.Image]] = {
    "crop70": crop_70,
    "jpeg_q20": jpeg_q20,
    "resize50": resize_50,
    "grayscale": grayscale,
    "rotate10": rotate_10,
    "border_text": border_with_text,
}
