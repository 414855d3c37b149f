"""Pictures for the copy-detection benchmark, all from installed packages (nothing is downloaded at run time).

Install (Debian bookworm; `.ci/run` does the same where CI needs them):

    apt-get install openclipart-png tuxpaint-stamps-default gnome-backgrounds plasma-workspace-wallpapers \
        mate-backgrounds ukui-wallpapers lomiri-wallpapers lomiri-wallpapers-16.04 lomiri-wallpapers-20.04 \
        sway-backgrounds oxygen-icon-theme fonts-noto-color-emoji

Where each kind comes from:

* scene photos: scikit-image's bundled ``skimage.data`` photos (``tests/photos.py``) and the desktop
  wallpapers of the Debian packages above (``/usr/share/wallpapers``: one picture per design, its largest
  size, the dark variant left out; ``/usr/share/backgrounds``: ``-d`` variants of a ``-l`` left out);
* object photos and drawings: Tux Paint's stamps (``/usr/share/tuxpaint/stamps``: cut-outs on white, the
  way product pictures are shot; each with a description in its ``.txt``);
* clip-art: Open Clip Art's PNGs (``/usr/share/openclipart/png``), on white;
* icons: the Oxygen icon theme's 256 px PNGs (``/usr/share/icons/oxygen/base/256x256``), on white;
* emoji: Noto Color Emoji (``fonts-noto-color-emoji``), each code point that has a Unicode name drawn at
  109 px on white, named by its Unicode name.

Sources (the pictures whose copies are searched) are every scene photo and then object photos, in a seeded
order, up to the count asked; distractors are the rest of the stamps and the clip-art; overlays (logos for the
overlay edits, backgrounds for picture-in-picture) are clip-art and stamps that are indexed nowhere. Pictures
are scaled to at most 800 px on the long side, and near-duplicates are dropped (``_Unique``): the packages
ship some designs several times (the same wallpaper at two sizes, one design in four colour schemes), and a
copy of one of them would "miss" on its twin; Open Clip Art holds ~1,400 generated stars that differ in a
few pixels. The test is independent of the model: a 32x32 grey thumbnail of the content
(trimmed of a plain background), standardized, whose correlation
with an earlier picture's is at least 0.9 (or the same pixels). Blank pictures (grey standard deviation
under 8 levels: transparent PNGs flattened onto white, plain gradients) are dropped too: they have nothing
to find a copy by.

A quarter of the stamps, clip-art and icons, chosen by a hash of the name (``is_training``), is the *training*
part: the whitening of the stored vectors is fitted on it (``bench/fit_whitening.py``) and the benchmark
never uses it, as source, distractor or overlay.
"""

from __future__ import annotations

import hashlib
import random
import re
import sys
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageChops, ImageDraw, ImageFont

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

import photos  # noqa: E402

MAX_SIDE = 800
MIN_SIDE = 100
WALLPAPERS = Path("/usr/share/wallpapers")
BACKGROUNDS = Path("/usr/share/backgrounds")
STAMPS = Path("/usr/share/tuxpaint/stamps")
CLIPART = Path("/usr/share/openclipart/png")
ICONS = Path("/usr/share/icons/oxygen/base/256x256")
EMOJI_FONT = Path("/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf")
EMOJI_RANGES = ((0x2600, 0x27C0), (0x1F300, 0x1FB00))
PICTURE = re.compile(r"\.(jpe?g|png|webp)$", re.IGNORECASE)
OVERLAYS = 300
NOT_PHOTOS = frozenset({"alphabets", "symbols", "cartoon", "signs", "roadsigns"})


@dataclass
class Corpus:
    sources: list[tuple[str, Image.Image]]
    distractors: list[tuple[str, Image.Image]]
    overlays: list[Image.Image]
    description: dict[str, object] = field(default_factory=dict)
    # Pictures indexed nowhere, drawn from the distractors' pool (an eighth of it, by a hash of the name):
    # their copies' best hits are what a copy threshold must reject.
    negatives: list[tuple[str, Image.Image]] = field(default_factory=list)


def _flatten(image: Image.Image) -> Image.Image:
    if image.mode in ("RGBA", "LA", "P"):
        image = image.convert("RGBA")
        white = Image.new("RGB", image.size, (255, 255, 255))
        white.paste(image, mask=image.getchannel("A"))
        return white
    return image.convert("RGB")


def _open(path: Path) -> Image.Image | None:
    try:
        with Image.open(path) as raw:
            if raw.width * raw.height > 40_000_000:  # a few huge clip-art posters: slow, and no different
                return None
            raw.draft("RGB", (MAX_SIDE, MAX_SIDE))
            image = _flatten(raw)
    except (OSError, ValueError, Image.DecompressionBombError):
        return None
    image.thumbnail((MAX_SIDE, MAX_SIDE), Image.Resampling.LANCZOS)
    if min(image.size) < MIN_SIDE:
        if min(image.size) < 24:
            return None
        scale = MIN_SIDE / min(image.size)
        image = image.resize(
            (round(image.width * scale), round(image.height * scale)), Image.Resampling.BICUBIC
        )
    return image


def _largest(paths: list[Path]) -> Path:
    def pixels(path: Path) -> int:
        match = re.match(r"(\d+)x(\d+)", path.stem)
        return int(match[1]) * int(match[2]) if match else path.stat().st_size

    return max(paths, key=pixels)


def scene_photo_paths() -> list[Path]:
    found: list[Path] = []
    if WALLPAPERS.is_dir():
        for design in sorted(WALLPAPERS.iterdir()):
            images = [p for p in (design / "contents" / "images").glob("*") if PICTURE.search(p.name)]
            if not images:
                images = [p for p in (design / "contents").glob("*") if PICTURE.search(p.name)]
            if images:
                found.append(_largest(images))
    if BACKGROUNDS.is_dir():
        designs: dict[str, list[Path]] = {}
        for path in sorted(BACKGROUNDS.rglob("*")):
            if PICTURE.search(path.name) and not path.stem.endswith("-d"):
                designs.setdefault(_design(path), []).append(path)
        found.extend(_largest(paths) for paths in designs.values())
    return found


def _design(path: Path) -> str:
    """One design's files share this (sway ships Blue_1136x640, Blue_1366x768, Blue_1136x640_Portrait …)."""
    stem = re.sub(r"(_portrait|[_-]?\d+x\d+)", "", path.stem, flags=re.IGNORECASE)
    return str(path.with_name(stem))


def stamp_paths() -> list[Path]:
    return sorted(p for p in STAMPS.rglob("*.png") if "_mirror" not in p.stem) if STAMPS.is_dir() else []


def clipart_paths() -> list[Path]:
    return sorted(CLIPART.rglob("*.png")) if CLIPART.is_dir() else []


def icon_paths() -> list[Path]:
    return sorted(ICONS.rglob("*.png")) if ICONS.is_dir() else []


def emoji_names() -> list[str]:
    """``emoji:<unicode name>`` of every named code point in the emoji ranges (drawn by ``emoji``)."""
    if not EMOJI_FONT.is_file():
        return []
    return [
        f"emoji:{unicodedata.name(chr(c)).lower()}"
        for lo, hi in EMOJI_RANGES
        for c in range(lo, hi)
        if unicodedata.name(chr(c), "")
    ]


def emoji(name: str) -> Image.Image | None:
    """The emoji ``name`` (from ``emoji_names``) drawn on white; None where the font has no picture of it."""
    font = ImageFont.truetype(str(EMOJI_FONT), 109)  # the bitmap strike's only size
    char = unicodedata.lookup(name.removeprefix("emoji:"))
    image = Image.new("RGB", (160, 150), (255, 255, 255))
    ImageDraw.Draw(image).text((12, 11), char, font=font, embedded_color=True)
    return image if np.asarray(image).std() > 1 else None


def _name(path: Path, root: Path, prefix: str) -> str:
    return f"{prefix}:{path.relative_to(root).with_suffix('').as_posix()}"[:120]


def is_training(name: str) -> bool:
    """The training quarter of the stamps, clip-art, icons and emoji (byte 1 of the hash: independent of
    the tune split)."""
    return hashlib.sha256(name.encode()).digest()[1] % 4 == 0


def _bench_paths(paths: list[Path], root: Path, prefix: str) -> list[Path]:
    return [p for p in paths if not is_training(_name(p, root, prefix))]


def training(limit: int | None = None) -> list[tuple[str, Image.Image]]:
    """The training part: (name, picture) of the stamps and clip-art the benchmark never uses."""
    out: list[tuple[str, Image.Image]] = []
    unique = _Unique()
    for prefix, root, paths in (
        ("stamp", STAMPS, stamp_paths()),
        ("clipart", CLIPART, clipart_paths()),
        ("icon", ICONS, icon_paths()),
    ):
        for path in paths:
            name = _name(path, root, prefix)
            if is_training(name) and (limit is None or len(out) < limit):
                image = unique(_open(path))
                if image is not None:
                    out.append((name, image))
    for name in emoji_names():
        if is_training(name) and (limit is None or len(out) < limit):
            image = unique(emoji(name))
            if image is not None:
                out.append((name, image))
    return out


class _Unique:
    """Keeps a picture only if it is no near-duplicate of one kept before (see the module docstring)."""

    SIDE = 32
    MAX_CORRELATION = 0.9
    MIN_STD = 8.0

    def __init__(self) -> None:
        self.digests: set[str] = set()
        self.signatures = np.zeros((1024, self.SIDE * self.SIDE), np.float32)
        self.kept = 0
        self.dropped = 0

    def signature(self, image: Image.Image) -> np.ndarray:
        grey_image = image.convert("L")
        # Trimmed to what differs from the corner colour: Tux Paint's stamps and Open Clip Art share some
        # drawings on canvases of other margins.
        background = Image.new("L", grey_image.size, grey_image.getpixel((0, 0)))
        box = ImageChops.difference(grey_image, background).point(lambda v: 255 if v > 16 else 0).getbbox()
        if box is not None:
            grey_image = grey_image.crop(box)
        small = grey_image.resize((self.SIDE, self.SIDE), Image.Resampling.BOX)
        grey = np.asarray(small, np.float32).reshape(-1)
        if float(grey.std()) < self.MIN_STD:
            return np.zeros_like(grey)
        grey -= grey.mean()
        return grey / max(float(np.linalg.norm(grey)), 1e-6)

    def __call__(self, image: Image.Image | None) -> Image.Image | None:
        if image is None:
            return None
        digest = hashlib.sha256(image.tobytes()).hexdigest()
        sig = self.signature(image)
        blank = float(np.linalg.norm(sig)) < 0.5
        if (
            blank
            or digest in self.digests
            or (self.kept and float((self.signatures[: self.kept] @ sig).max()) >= self.MAX_CORRELATION)
        ):
            self.dropped += 1
            return None
        self.digests.add(digest)
        if self.kept == len(self.signatures):
            self.signatures = np.concatenate([self.signatures, np.zeros_like(self.signatures)])
        self.signatures[self.kept] = sig
        self.kept += 1
        return image


def _is_negative(name: str) -> bool:
    return hashlib.sha256(name.encode()).digest()[2] % 8 == 0


def load(*, sources: int, distractors: int, seed: int = 0, negatives: int = 0) -> Corpus:
    rng = random.Random(seed)
    unique = _Unique()

    scenes: list[tuple[str, Image.Image]] = []
    for name in photos.PHOTO_NAMES:
        image = unique(photos.load_photo(name))
        if image is not None:
            image.thumbnail((MAX_SIDE, MAX_SIDE))
            scenes.append((f"skimage:{name}", image))
    for path in scene_photo_paths():
        image = unique(_open(path))
        if image is not None:
            root = WALLPAPERS if path.is_relative_to(WALLPAPERS) else BACKGROUNDS
            scenes.append((_name(path, root, "wallpaper"), image))

    stamps = _bench_paths(stamp_paths(), STAMPS, "stamp")
    clipart = _bench_paths(clipart_paths(), CLIPART, "clipart")
    icons = _bench_paths(icon_paths(), ICONS, "icon")
    rng.shuffle(stamps)
    rng.shuffle(clipart)
    # Indexed nowhere: the overlay edits' logos and picture-in-picture backgrounds.
    overlay_paths, clipart = clipart[:OVERLAYS], clipart[OVERLAYS:]
    overlays = [im for im in (_open(p) for p in overlay_paths) if im is not None]

    chosen: list[tuple[str, Image.Image]] = scenes[:sources]
    stamp_iter = iter(stamps)
    skipped: list[Path] = []
    for path in stamp_iter:
        if len(chosen) >= sources:
            break
        if any(part in path.parts for part in NOT_PHOTOS):
            skipped.append(path)  # letters and cartoons: copies of one look like the others
            continue
        image = unique(_open(path))
        if image is not None:
            chosen.append((_name(path, STAMPS, "stamp"), image))

    rest: list[tuple[str, Image.Image]] = []
    unindexed: list[tuple[str, Image.Image]] = []

    def full() -> bool:
        return len(rest) >= distractors and len(unindexed) >= negatives

    def take(name: str, image: Image.Image | None) -> None:
        if image is None:
            return
        if negatives and _is_negative(name) and len(unindexed) < negatives:
            unindexed.append((name, image))
        elif len(rest) < distractors:
            rest.append((name, image))

    for prefix, root, paths in (
        ("stamp", STAMPS, [*skipped, *stamp_iter]),
        ("icon", ICONS, icons),
        ("clipart", CLIPART, clipart),
    ):
        for path in paths:
            if full():
                break
            take(_name(path, root, prefix), unique(_open(path)))
    for name in [n for n in emoji_names() if not is_training(n)]:
        if full():
            break
        take(name, unique(emoji(name)))
    kinds: dict[str, int] = {}
    for name, _ in chosen:
        kinds[name.split(":")[0]] = kinds.get(name.split(":")[0], 0) + 1
    description = {
        "sources": len(chosen),
        "sources_by_kind": kinds,
        "distractors": len(rest),
        "distractors_by_kind": {
            k: sum(1 for n, _ in rest if n.startswith(k + ":")) for k in ("stamp", "icon", "clipart", "emoji")
        },
        "overlays": len(overlays),
        "packages": "skimage.data; Debian bookworm openclipart-png, tuxpaint-stamps-default, "
        "gnome-backgrounds, plasma-workspace-wallpapers, mate-backgrounds, ukui-wallpapers, "
        "lomiri-wallpapers(-16.04, -20.04), sway-backgrounds, oxygen-icon-theme, fonts-noto-color-emoji",
        "max_side": MAX_SIDE,
        "near_duplicates_dropped": unique.dropped,
        "seed": seed,
    }
    if len(chosen) < sources or len(rest) < distractors:
        print(
            f"picture_corpus: only {len(chosen)} sources and {len(rest)} distractors installed",
            file=sys.stderr,
        )
    description["negatives"] = len(unindexed)
    return Corpus(chosen, rest, overlays, description, unindexed)
