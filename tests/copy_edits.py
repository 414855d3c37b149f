"""Copy edits shaped like the DISC21 / Copydays families, for the copy-detection benchmark and its CI floor.

Every edit is a pure function of (picture, random generator, overlays): the generator is seeded per
(picture, family), so a run is reproducible and the held-out part can use other seeds. `overlays` are small
pictures (emoji, logos, other photos) pasted by the overlay and picture-in-picture families; callers pass
pictures that are NOT in the indexed set, or the task would plant a second copy.

Sizes stay inside the service's limits (shortest side >= 100 px): the "thumbnail" family goes down to 100 px.
"""

from __future__ import annotations

import io
import math
import random
from collections.abc import Callable, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageFont, ImageOps

Edit = Callable[[Image.Image, random.Random, Sequence[Image.Image]], Image.Image]
MIN_SIDE = 100

WORDS = [
    "SALE",
    "-50%",
    "NEW",
    "www.shop.example",
    "HOT DEAL",
    "FREE SHIPPING",
    "限时特价",
    "BEST",
    "2026",
    "@seller_account",
    "ORIGINAL",
    "Limited offer",
    "包邮",
    "TOP QUALITY",
    "#1 seller",
    "buy now",
]


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=max(8, size))


def _colour(rng: random.Random) -> tuple[int, int, int]:
    return (rng.randrange(256), rng.randrange(256), rng.randrange(256))


def _at_least(image: Image.Image, side: int = MIN_SIDE) -> Image.Image:
    if min(image.size) >= side:
        return image
    scale = side / min(image.size)
    return image.resize(
        (math.ceil(image.width * scale), math.ceil(image.height * scale)), Image.Resampling.BICUBIC
    )


def _words(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


def crop(image: Image.Image, rng: random.Random, _o: Sequence[Image.Image]) -> Image.Image:
    """40-60 % of the area, anywhere, aspect ratio jittered."""
    area = rng.uniform(0.40, 0.60)
    aspect = rng.uniform(0.75, 1.33)
    w = min(image.width, round(image.width * math.sqrt(area * aspect)))
    h = min(image.height, round(image.height * area / (w / image.width)))
    x, y = rng.randint(0, image.width - w), rng.randint(0, image.height - h)
    return _at_least(image.crop((x, y, x + w, y + h)))


def rotate(image: Image.Image, rng: random.Random, _o: Sequence[Image.Image]) -> Image.Image:
    """±4-15°, either with the canvas expanded (filled) or cropped to the rotated picture's inside."""
    angle = rng.uniform(4, 15) * rng.choice([-1, 1])
    if rng.random() < 0.5:
        fill = rng.choice([(255, 255, 255), (0, 0, 0), _colour(rng)])
        return image.rotate(angle, resample=Image.Resampling.BICUBIC, expand=True, fillcolor=fill)
    turned = image.rotate(angle, resample=Image.Resampling.BICUBIC, expand=False)
    a = math.radians(abs(angle))
    w, h = image.size
    # Largest axis-aligned rectangle of the same aspect inside the rotated picture.
    scale = 1 / (math.cos(a) + math.sin(a) * max(w / h, h / w))
    cw, ch = round(w * scale), round(h * scale)
    left, top = (w - cw) // 2, (h - ch) // 2
    return _at_least(turned.crop((left, top, left + cw, top + ch)))


def frame(image: Image.Image, rng: random.Random, _o: Sequence[Image.Image]) -> Image.Image:
    """A frame 5-20 % of the shorter side, one or two colours, sometimes uneven."""
    side = min(image.size)
    widths = [round(side * rng.uniform(0.05, 0.20)) for _ in range(4)]
    if rng.random() < 0.6:
        widths = [widths[0]] * 4
    outer = ImageOps.expand(image, border=tuple(widths), fill=_colour(rng))
    if rng.random() < 0.5:
        inner = max(2, widths[0] // 4)
        draw = ImageDraw.Draw(outer)
        draw.rectangle(
            (
                widths[0] - inner,
                widths[1] - inner,
                widths[0] + image.width + inner,
                widths[1] + image.height + inner,
            ),
            outline=_colour(rng),
            width=inner,
        )
    return outer


def pad(image: Image.Image, rng: random.Random, _o: Sequence[Image.Image]) -> Image.Image:
    """Letterboxed onto a square (or 16:9) canvas, as marketplaces do."""
    w, h = image.size
    target = rng.choice([1.0, 16 / 9, 9 / 16, 4 / 3])
    cw, ch = (max(w, round(h * target)), max(h, round(w / target)))
    canvas = Image.new(
        "RGB", (cw, ch), rng.choice([(255, 255, 255), (0, 0, 0), (240, 240, 240), _colour(rng)])
    )
    canvas.paste(image, ((cw - w) // 2, (ch - h) // 2))
    return canvas


def banner(image: Image.Image, rng: random.Random, _o: Sequence[Image.Image]) -> Image.Image:
    """A coloured bar of 12-25 % of the height with words, over the top or bottom, or added below."""
    w, h = image.size
    bar = round(h * rng.uniform(0.12, 0.25))
    out = image.copy()
    if rng.random() < 0.4:
        out = ImageOps.expand(out, border=(0, 0, 0, bar), fill=_colour(rng))
        y = h
    else:
        y = 0 if rng.random() < 0.5 else h - bar
        ImageDraw.Draw(out).rectangle((0, y, w, y + bar), fill=_colour(rng))
    draw = ImageDraw.Draw(out)
    draw.text(
        (round(w * 0.04), y + bar // 5), _words(rng, 3), fill=_colour(rng), font=_font(round(bar * 0.55))
    )
    return out


def text_overlay(image: Image.Image, rng: random.Random, _o: Sequence[Image.Image]) -> Image.Image:
    """2-5 captions or a watermark across the picture."""
    out = image.copy()
    draw = ImageDraw.Draw(out, "RGBA")
    side = min(image.size)
    for _ in range(rng.randint(2, 5)):
        size = round(side * rng.uniform(0.06, 0.16))
        alpha = rng.choice([255, 255, 160, 110])
        xy = (rng.randint(0, max(1, image.width - size * 3)), rng.randint(0, max(1, image.height - size)))
        draw.text(xy, _words(rng, rng.randint(1, 3)), fill=(*_colour(rng), alpha), font=_font(size))
    return out


def _paste(out: Image.Image, piece: Image.Image, xy: tuple[int, int]) -> None:
    if piece.mode == "RGBA":
        out.paste(piece.convert("RGB"), xy, piece.getchannel("A"))
    else:
        out.paste(piece.convert("RGB"), xy)


def logo_overlay(image: Image.Image, rng: random.Random, overlays: Sequence[Image.Image]) -> Image.Image:
    """1-3 emoji or logos of 10-25 % of the shorter side pasted on it."""
    out = image.copy()
    side = min(image.size)
    for _ in range(rng.randint(1, 3)):
        piece = rng.choice(overlays) if overlays else Image.new("RGBA", (64, 64), (*_colour(rng), 255))
        size = max(8, round(side * rng.uniform(0.10, 0.25)))
        piece = piece.copy()
        piece.thumbnail((size, size))
        _paste(
            out, piece, (rng.randint(0, out.width - piece.width), rng.randint(0, out.height - piece.height))
        )
    return out


def scribble(image: Image.Image, rng: random.Random, _o: Sequence[Image.Image]) -> Image.Image:
    """3-8 freehand strokes 1-4 % of the shorter side wide."""
    out = image.copy()
    draw = ImageDraw.Draw(out)
    w, h = image.size
    for _ in range(rng.randint(3, 8)):
        x, y = rng.uniform(0, w), rng.uniform(0, h)
        points = [(x, y)]
        for _ in range(rng.randint(3, 10)):
            x = min(w, max(0, x + rng.uniform(-0.2, 0.2) * w))
            y = min(h, max(0, y + rng.uniform(-0.2, 0.2) * h))
            points.append((x, y))
        draw.line(
            points, fill=_colour(rng), width=max(2, round(min(w, h) * rng.uniform(0.01, 0.04))), joint="curve"
        )
    return out


def picture_in_picture(
    image: Image.Image, rng: random.Random, overlays: Sequence[Image.Image]
) -> Image.Image:
    """The picture at 45-75 % of the width, pasted into another picture."""
    if overlays:
        background = rng.choice(overlays).convert("RGB")
        background = background.resize(
            (max(image.width, 300), max(image.height, 300)), Image.Resampling.BICUBIC
        )
    else:
        background = Image.new("RGB", image.size, _colour(rng))
    scale = rng.uniform(0.45, 0.75)
    inner = image.resize(
        (
            max(MIN_SIDE // 2, round(background.width * scale)),
            max(MIN_SIDE // 2, round(background.width * scale * image.height / image.width)),
        )
    )
    if inner.height > background.height:
        inner.thumbnail((background.width, background.height))
    out = background.copy()
    out.paste(inner, (rng.randint(0, out.width - inner.width), rng.randint(0, out.height - inner.height)))
    return _at_least(out)


def screenshot(image: Image.Image, rng: random.Random, _o: Sequence[Image.Image]) -> Image.Image:
    """The picture inside a phone or browser screen: status bar, title, buttons, price text."""
    w, h = image.size
    scale = rng.uniform(0.55, 0.8)
    inner = image.resize((round(w * scale), round(h * scale)), Image.Resampling.BILINEAR)
    sw = round(inner.width / rng.uniform(0.75, 0.95))
    top, bottom = round(inner.height * rng.uniform(0.12, 0.25)), round(inner.height * rng.uniform(0.2, 0.45))
    bg = rng.choice([(255, 255, 255), (245, 245, 245), (18, 18, 18)])
    fg = (20, 20, 20) if sum(bg) > 300 else (235, 235, 235)
    out = Image.new("RGB", (sw, top + inner.height + bottom), bg)
    draw = ImageDraw.Draw(out)
    font = _font(max(10, top // 4))
    draw.rectangle((0, 0, sw, top // 3), fill=_colour(rng))
    draw.text((8, top // 3 + 4), "< " + _words(rng, 2), fill=fg, font=font)
    x = (sw - inner.width) // 2
    out.paste(inner, (x, top))
    y = top + inner.height + 6
    draw.text((8, y), "¥ 199.00  " + _words(rng, 2), fill=(220, 30, 30), font=font)
    draw.rounded_rectangle(
        (8, out.height - max(bottom // 2, 12), sw - 8, out.height - 8), radius=4, fill=_colour(rng)
    )
    return _at_least(out)


def blur(image: Image.Image, rng: random.Random, _o: Sequence[Image.Image]) -> Image.Image:
    return image.filter(ImageFilter.GaussianBlur(radius=rng.uniform(1.5, 4.0) * min(image.size) / 400))


def noise(image: Image.Image, rng: random.Random, _o: Sequence[Image.Image]) -> Image.Image:
    array = np.asarray(image, dtype=np.float32)
    sigma = rng.uniform(8, 25)
    noisy = array + np.random.default_rng(rng.randrange(2**32)).normal(0, sigma, array.shape)
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))


def jpeg(image: Image.Image, rng: random.Random, _o: Sequence[Image.Image]) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=rng.randint(8, 25))
    return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")


def colour(image: Image.Image, rng: random.Random, _o: Sequence[Image.Image]) -> Image.Image:
    """A hue rotation, or saturation / brightness / contrast changes, or grayscale."""
    choice = rng.random()
    if choice < 0.2:
        return ImageOps.grayscale(image).convert("RGB")
    if choice < 0.5:
        hsv = np.asarray(image.convert("HSV")).copy()
        hsv[..., 0] = (hsv[..., 0].astype(np.int32) + rng.randint(30, 225)) % 256
        return Image.fromarray(hsv, "HSV").convert("RGB")
    out = ImageEnhance.Color(image).enhance(rng.uniform(0.3, 1.8))
    out = ImageEnhance.Brightness(out).enhance(rng.uniform(0.6, 1.4))
    return ImageEnhance.Contrast(out).enhance(rng.uniform(0.6, 1.5))


def mirror(image: Image.Image, rng: random.Random, _o: Sequence[Image.Image]) -> Image.Image:
    return ImageOps.mirror(image) if rng.random() < 0.8 else ImageOps.flip(image)


def thumbnail(image: Image.Image, rng: random.Random, _o: Sequence[Image.Image]) -> Image.Image:
    side = rng.randint(MIN_SIDE, 128)
    scale = side / min(image.size)
    return image.resize(
        (max(MIN_SIDE, round(image.width * scale)), max(MIN_SIDE, round(image.height * scale))),
        Image.Resampling.LANCZOS,
    )


FAMILIES: dict[str, Edit] = {
    "crop": crop,
    "rotate": rotate,
    "frame": frame,
    "pad": pad,
    "banner": banner,
    "text": text_overlay,
    "logo": logo_overlay,
    "scribble": scribble,
    "pip": picture_in_picture,
    "screenshot": screenshot,
    "blur": blur,
    "noise": noise,
    "jpeg": jpeg,
    "colour": colour,
    "mirror": mirror,
    "thumbnail": thumbnail,
}
# Pairs draw from these (a crop of a screenshot of a crop is not a copy anyone would call the same picture).
_COMBINABLE = [
    "crop",
    "rotate",
    "frame",
    "banner",
    "text",
    "logo",
    "scribble",
    "blur",
    "jpeg",
    "colour",
    "mirror",
]


def combined(image: Image.Image, rng: random.Random, overlays: Sequence[Image.Image]) -> Image.Image:
    first, second = rng.sample(_COMBINABLE, 2)
    return FAMILIES[second](FAMILIES[first](image, rng, overlays), rng, overlays)


FAMILIES["combined"] = combined


def edit(image: Image.Image, family: str, seed: int, overlays: Sequence[Image.Image] = ()) -> Image.Image:
    """The `family` edit of `image`, reproducible from `seed`; RGB, shortest side >= 100 px."""
    rng = random.Random(f"{family}:{seed}")
    return _at_least(FAMILIES[family](image.convert("RGB"), rng, overlays).convert("RGB"))
