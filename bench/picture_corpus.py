"""Pictures for the copy-detection benchmark, all from installed packages (nothing is downloaded at run time).

Install (Debian bookworm; `.ci/run` does the same where CI needs them):

    apt-get install openclipart-png tuxpaint-stamps-default gnome-backgrounds plasma-workspace-wallpapers \
        mate-backgrounds ukui-wallpapers

Where each kind comes from:

* scene photos: scikit-image's bundled ``skimage.data`` photos (``tests/photos.py``) and the desktop
  wallpapers of the Debian packages above (``/usr/share/wallpapers``: one picture per design, its largest
  size, the dark variant left out; ``/usr/share/backgrounds``: ``-d`` variants of a ``-l`` left out);
* object photos and drawings: Tux Paint's stamps (``/usr/share/tuxpaint/stamps``: cut-outs on white, the
  way product pictures are shot; each with a description in its ``.txt``);
* clip-art: Open Clip Art's PNGs (``/usr/share/openclipart/png``), on white.

Sources (the pictures whose copies are searched) are every scene photo and then object photos, in a seeded
order, up to the count asked; distractors are the rest of the stamps and the clip-art; overlays (logos for the
overlay edits, backgrounds for picture-in-picture) are clip-art and stamps that are indexed nowhere. Pictures
are scaled to at most 800 px on the long side and exact duplicates (same pixels) are dropped.
"""

from __future__ import annotations

import hashlib
import random
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

import photos  # noqa: E402

MAX_SIDE = 800
MIN_SIDE = 100
WALLPAPERS = Path("/usr/share/wallpapers")
BACKGROUNDS = Path("/usr/share/backgrounds")
STAMPS = Path("/usr/share/tuxpaint/stamps")
CLIPART = Path("/usr/share/openclipart/png")
PICTURE = re.compile(r"\.(jpe?g|png|webp)$", re.IGNORECASE)
OVERLAYS = 300
NOT_PHOTOS = frozenset({"alphabets", "symbols", "cartoon", "signs", "roadsigns"})


@dataclass
class Corpus:
    sources: list[tuple[str, Image.Image]]
    distractors: list[tuple[str, Image.Image]]
    overlays: list[Image.Image]
    description: dict[str, object] = field(default_factory=dict)


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
        for path in sorted(BACKGROUNDS.rglob("*")):
            if PICTURE.search(path.name) and not path.stem.endswith("-d"):
                found.append(path)
    return found


def stamp_paths() -> list[Path]:
    return sorted(p for p in STAMPS.rglob("*.png") if "_mirror" not in p.stem) if STAMPS.is_dir() else []


def clipart_paths() -> list[Path]:
    return sorted(CLIPART.rglob("*.png")) if CLIPART.is_dir() else []


def _name(path: Path, root: Path, prefix: str) -> str:
    return f"{prefix}:{path.relative_to(root).with_suffix('').as_posix()}"[:120]


def load(*, sources: int, distractors: int, seed: int = 0) -> Corpus:
    rng = random.Random(seed)
    seen: set[str] = set()

    def unique(image: Image.Image | None) -> Image.Image | None:
        if image is None:
            return None
        digest = hashlib.sha256(image.tobytes()).hexdigest()
        if digest in seen:
            return None
        seen.add(digest)
        return image

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

    stamps = stamp_paths()
    clipart = clipart_paths()
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
    for prefix, root, paths in (("stamp", STAMPS, [*skipped, *stamp_iter]), ("clipart", CLIPART, clipart)):
        for path in paths:
            if len(rest) >= distractors:
                break
            image = unique(_open(path))
            if image is not None:
                rest.append((_name(path, root, prefix), image))
    kinds: dict[str, int] = {}
    for name, _ in chosen:
        kinds[name.split(":")[0]] = kinds.get(name.split(":")[0], 0) + 1
    description = {
        "sources": len(chosen),
        "sources_by_kind": kinds,
        "distractors": len(rest),
        "distractors_by_kind": {
            k: sum(1 for n, _ in rest if n.startswith(k + ":")) for k in ("stamp", "clipart")
        },
        "overlays": len(overlays),
        "packages": "skimage.data; Debian bookworm openclipart-png, tuxpaint-stamps-default, "
        "gnome-backgrounds, plasma-workspace-wallpapers, mate-backgrounds, ukui-wallpapers",
        "max_side": MAX_SIDE,
        "seed": seed,
    }
    if len(chosen) < sources or len(rest) < distractors:
        print(
            f"picture_corpus: only {len(chosen)} sources and {len(rest)} distractors installed",
            file=sys.stderr,
        )
    return Corpus(chosen, rest, overlays, description)
