"""Captioned pictures for the text -> picture mapping (``bench/fit_text_mapping.py``) and its evaluation
(``bench/text_search_eval.py``), all from the installed packages of ``bench/picture_corpus.py``.

What a picture's words (``label``) are, by where it comes from:

* Tux Paint stamps: the first line of the stamp's ``.txt`` (its English description, e.g. "A US 25 cent
  piece ($.25) called a quarter.") and the words of its folder and file name ("animals mammals cat");
* Open Clip Art: the words of its folder and file name ("science astronomy full moon dan gerhards"; many
  names carry the author's name, some are Italian);
* Oxygen and Adwaita icons: the words of the icon name ("places folder red");
* Noto emoji: the code point's Unicode name ("red apple");
* wallpapers: the words of the design's name ("YellowFlower" -> "yellow flower"; many say nothing);
* scikit-image photos: a one-line description written here (``SKIMAGE``).

The split is ``picture_corpus.is_training`` (a quarter of the stamps, clip-art, icons and emoji by a hash of
the name): the mapping is fitted on that quarter only, plus the Adwaita icons (``adwaita-icon-theme``, 96 px:
pictures no benchmark uses); the evaluation draws from the rest, plus the scene
photos (wallpapers and scikit-image), which no fit ever sees.
"""

from __future__ import annotations

import random
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))
sys.path.insert(0, str(REPO / "tests"))

import picture_corpus as pc  # noqa: E402

import photos  # noqa: E402

SKIMAGE: dict[str, str] = {
    "astronaut": "a photo of an astronaut in a space suit with the american flag",
    "brick": "a photo of a brick wall",
    "camera": "a black and white photo of a man with a camera on a tripod",
    "cell": "a microscope image of a cell",
    "chelsea": "a photo of a tabby cat",
    "clock": "a photo of a clock on a wall",
    "coffee": "a photo of a cup of coffee on a saucer",
    "coins": "a photo of old coins",
    "colorwheel": "a colour wheel of the rainbow",
    "grass": "a photo of green grass",
    "gravel": "a photo of gravel stones",
    "horse": "a silhouette of a horse",
    "hubble_deep_field": "a space telescope photo of galaxies in deep space",
    "immunohistochemistry": "a microscope image of stained tissue",
    "logo": "the scikit-image logo, a snake",
    "microaneurysms": "a medical image of a retina",
    "moon": "a photo of the surface of the moon",
    "motorcycle_left": "a photo of a motorcycle",
    "page": "a scanned page of printed text",
    "retina": "a medical photo of a retina with blood vessels",
    "rocket": "a photo of a rocket launching into the sky",
    "text": "a photo of printed text on a sign",
}


@dataclass(frozen=True)
class Captioned:
    name: str  # picture_corpus's name, "<kind>:<path>"
    label: str  # the words that describe it (see the module docstring)
    image: Image.Image


def _words(text: str) -> str:
    """File and folder names -> lower-case words ("YellowFlower_by_X-2" -> "yellow flower by x")."""
    text = re.sub(r"([a-z])([A-Z])", r"\1 \2", text)
    text = re.sub(r"[_\-./]+", " ", text)
    text = re.sub(r"\b\d+\b|\b\d+x\d+\b", " ", text)
    return " ".join(text.lower().split())


def stamp_description(path: Path) -> str:
    """The English line of a Tux Paint stamp's description ('' when it has none)."""
    txt = path.with_suffix(".txt")
    if not txt.is_file():
        txt = path.with_name(re.sub(r"_(front|back|left|right|\d+)$", "", path.stem) + ".txt")
    if not txt.is_file():
        return ""
    for line in txt.read_text(encoding="utf-8", errors="replace").splitlines():
        line = line.strip()
        if line and "=" not in line.split(" ")[0]:
            return line
    return ""


def label(name: str) -> str:
    """The words that describe the corpus picture ``name`` (see the module docstring)."""
    kind, _, rest = name.partition(":")
    if kind == "stamp":
        description = stamp_description(pc.STAMPS / (rest + ".png"))
        return f"{description} ({_words(rest)})" if description else _words(rest)
    if kind == "clipart":
        return re.sub(r"\s+\d+$", "", _words(rest))
    if kind in ("icon", "adwaita"):
        return _words(re.sub(r"-symbolic$", "", rest))
    if kind == "emoji":
        return rest
    if kind == "skimage":
        return SKIMAGE.get(rest, _words(rest))
    if kind == "wallpaper":
        design = rest.split("/")[0] if "/contents/" in rest else rest.split("/")[-1]
        return _words(re.sub(r"_by_.*$", "", design))
    return _words(rest)


ADWAITA = Path("/usr/share/icons/Adwaita/96x96")


def adwaita() -> list[tuple[str, Path]]:
    """The Adwaita theme's full-colour icons (``adwaita-icon-theme``; no corpus or benchmark uses them)."""
    if not ADWAITA.is_dir():
        return []
    return [
        (f"adwaita:{p.relative_to(ADWAITA).with_suffix('').as_posix()}", p)
        for p in sorted(ADWAITA.rglob("*.png"))
    ]


def training() -> list[Captioned]:
    """The training quarter (``picture_corpus.training``: stamps, clip-art, icons, emoji; near-duplicates
    dropped), plus the Adwaita icons (pictures of no benchmark), each with its words."""
    out = [Captioned(name, label(name), image) for name, image in pc.training()]
    unique = pc._Unique()
    for item in out:
        unique(item.image)
    for name, path in adwaita():
        image = unique(pc._open(path))
        if image is not None:
            out.append(Captioned(name, label(name), image))
    return out


def _scenes(unique: pc._Unique) -> Iterator[tuple[str, Image.Image]]:
    for name in photos.PHOTO_NAMES:
        image = unique(photos.load_photo(name))
        if image is not None:
            image.thumbnail((pc.MAX_SIDE, pc.MAX_SIDE))
            yield f"skimage:{name}", image
    for path in pc.scene_photo_paths():
        image = unique(pc._open(path))
        if image is not None:
            root = pc.WALLPAPERS if path.is_relative_to(pc.WALLPAPERS) else pc.BACKGROUNDS
            yield pc._name(path, root, "wallpaper"), image


def evaluation_names(seed: int = 13) -> list[tuple[str, Path | None]]:
    """Candidate pictures for the evaluation, none from the training quarter: (name, path or None)."""
    rng = random.Random(seed)
    out: list[tuple[str, Path | None]] = []
    for prefix, root, paths, share in (
        ("stamp", pc.STAMPS, pc.stamp_paths(), 1.0),
        ("icon", pc.ICONS, pc.icon_paths(), 1.0),
        ("clipart", pc.CLIPART, pc.clipart_paths(), 0.09),
    ):
        kept = [p for p in paths if not pc.is_training(pc._name(p, root, prefix))]
        kept = [p for p in kept if rng.random() < share]
        out.extend((pc._name(p, root, prefix), p) for p in kept)
    emoji = [n for n in pc.emoji_names() if not pc.is_training(n)]
    out.extend((n, None) for n in emoji if rng.random() < 0.3)
    return out


def evaluation(seed: int = 13) -> list[Captioned]:
    """The evaluation pictures: every scene photo (scikit-image, wallpapers), the non-training stamps and
    icons, a seeded 9 % of the non-training clip-art and 30 % of the non-training emoji; near-duplicates
    dropped (of each other and of any training picture: the training quarter is run through the same
    near-duplicate filter first)."""
    unique = pc._Unique()
    for _name, image in pc.training():  # a twin of a training picture is no held-out picture
        unique(image)
    out = [Captioned(name, label(name), image) for name, image in _scenes(unique)]
    for name, path in evaluation_names(seed):
        image = unique(pc._open(path) if path is not None else pc.emoji(name))
        if image is not None:
            out.append(Captioned(name, label(name), image))
    return out
