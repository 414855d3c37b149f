"""Alibaba Image Search product categories, predicted from ImageNet-1k class probabilities.

Every ImageNet class maps onto exactly one Alibaba category; classes that are not products of
a listed kind (animals, vehicles, scenes, tools, ...) map to "Other" (88888888).

Prediction rule (:func:`predict_category`): sum the probabilities of the ImageNet classes of
each product category (everything except "Other"); the category with the largest sum wins if
that sum is at least :data:`MIN_CATEGORY_MASS` (0.15). Otherwise the image is "Other". Summing
matters: a shoe photo typically spreads its mass over sneaker / loafer / sandal, none of which
alone beats a confident background class, while their sum does. The threshold keeps scenes
and animals, whose mass is spread thinly over many classes, out of product categories.

Mapping notes: food dishes and fruit count as Snacks (the only food category), vegetables do
not; balls and other play items count as Toys (there is no sports category); swimwear,
sleepwear and socks count as Underwear; wristwatches count as Accessories, not Digital devices.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

import numpy as np
import numpy.typing as npt

__all__ = [
    "ALIBABA_CATEGORIES",
    "MIN_CATEGORY_MASS",
    "OTHER",
    "all_categories",
    "category_name",
    "class_category_ids",
    "imagenet_class_names",
    "predict_category",
]

OTHER = 88888888

ALIBABA_CATEGORIES: dict[int, str] = {
    0: "Tops",
    1: "Dresses",
    2: "Bottoms",
    3: "Bags",
    4: "Shoes",
    5: "Accessories",
    6: "Snacks",
    7: "Makeup",
    8: "Bottled drinks",
    9: "Furniture",
    20: "Toys",
    21: "Underwear",
    22: "Digital devices",
    OTHER: "Other",
}

MIN_CATEGORY_MASS = 0.15

# ImageNet-1k class indices per category (names in data/imagenet_classes.txt).
_CLASSES: dict[int, tuple[int, ...]] = {
    # cardigan, fur coat, cloak, lab coat, T-shirt/jersey, poncho, suit, sweatshirt, trench coat
    0: (474, 568, 501, 617, 610, 735, 834, 841, 869),
    # abaya, gown, hoop skirt (crinoline), kimono
    1: (399, 578, 601, 614),
    # jeans, miniskirt, overskirt, sarong
    2: (608, 655, 689, 775),
    # backpack, messenger bag (mailbag), pencil case, purse, wallet
    3: (414, 636, 709, 748, 893),
    # clogs, cowboy boot, slip-on shoe (loafer), sneaker (running shoe), sandal
    4: (502, 514, 630, 770, 774),
    # bolo tie, poke bonnet, bow tie, buckle, cowboy hat, digital watch, feather boa, hair clip,
    # mitten, necklace, balaclava, sombrero, stole, sunglasses, umbrella, wig, Windsor tie
    5: (451, 452, 457, 464, 515, 531, 552, 584, 658, 679, 796, 808, 824, 837, 879, 903, 906),
    # candy store, guacamole, consomme, hot pot, trifle, ice cream, popsicle, baguette, bagel,
    # pretzel, cheeseburger, hot dog, mashed potatoes, fruit (948-957), carbonara, chocolate
    # syrup, meatloaf, pizza, pot pie, burrito
    6: (509, *range(924, 936), *range(948, 958), 959, 960, 962, 963, 964, 965),
    # face powder, hair spray, lipstick, lotion, perfume, sunscreen
    7: (551, 585, 629, 631, 711, 838),
    # beer bottle, soda bottle, water bottle, whiskey jug, wine bottle, red wine
    8: (440, 737, 898, 901, 907, 966),
    # barber chair, bassinet, bookcase, storage chest, chiffonier, china cabinet, cradle,
    # infant bed, desk, dining table, entertainment center, filing cabinet, folding chair,
    # four-poster bed, medicine cabinet, park bench, rocking chair, room divider, couch,
    # throne, wardrobe
    9: (
        423,
        431,
        453,
        492,
        493,
        495,
        516,
        520,
        526,
        532,
        548,
        553,
        559,
        564,
        648,
        703,
        765,
        789,
        831,
        857,
        894,
    ),
    # balloon, baseball, basketball, croquet ball, golf ball, jigsaw puzzle, ping-pong ball,
    # pinwheel, rugby ball, soccer ball, teddy bear, tennis ball, tricycle, volleyball
    20: (417, 429, 430, 522, 574, 611, 722, 723, 768, 805, 850, 852, 870, 890),
    # bikini, bra, leotard (maillot), one-piece swimsuit, pajamas, sock, swim trunks
    21: (445, 459, 638, 639, 697, 806, 842),
    # cassette player, CD player, mobile phone, computer keyboard, desktop computer, rotary
    # phone, hand-held computer, hard disk, home theater, iPod, joystick, laptop, lens cap,
    # music speaker, notebook computer, modem, monitor, computer mouse, printer, photocopier,
    # Polaroid camera, projector, radio, reflex camera, remote control, CRT monitor,
    # space bar, tape player, television
    22: (
        482,
        485,
        487,
        508,
        527,
        528,
        590,
        592,
        598,
        605,
        613,
        620,
        622,
        632,
        681,
        662,
        664,
        673,
        742,
        713,
        732,
        745,
        754,
        759,
        761,
        782,
        810,
        848,
        851,
    ),
}


@cache
def _names() -> tuple[str, ...]:
    text = resources.files("lookalike.vision").joinpath("data/imagenet_classes.txt").read_text("utf-8")
    names = tuple(line for line in text.splitlines() if line)
    if len(names) != 1000:
        raise RuntimeError(f"imagenet_classes.txt has {len(names)} names, expected 1000")
    return names


def imagenet_class_names() -> list[str]:
    """The 1000 ImageNet-1k class names in model output order (human-readable, unique)."""
    return list(_names())


@cache
def _class_to_category() -> npt.NDArray[np.int64]:
    table = np.full(1000, OTHER, dtype=np.int64)
    for cat, classes in _CLASSES.items():
        for c in classes:
            if table[c] != OTHER:
                raise RuntimeError(f"ImageNet class {c} mapped to both {table[c]} and {cat}")
            table[c] = cat
    table.setflags(write=False)
    return table


def class_category_ids() -> npt.NDArray[np.int64]:
    """(1000,) read-only array: Alibaba category id of each ImageNet class."""
    return _class_to_category()


def category_name(category_id: int) -> str:
    return ALIBABA_CATEGORIES[category_id]


def all_categories() -> list[tuple[int, str]]:
    """(id, name) pairs in id order, "Other" last."""
    return sorted(ALIBABA_CATEGORIES.items())


_PRODUCT_IDS = tuple(c for c in sorted(ALIBABA_CATEGORIES) if c != OTHER)


def predict_category(class_probs: npt.NDArray[np.floating]) -> int:
    """Alibaba category id for one image's (1000,) softmax probabilities (rule: module docs)."""
    probs = np.asarray(class_probs, dtype=np.float64)
    if probs.shape != (1000,):
        raise ValueError(f"expected class probabilities of shape (1000,), got {probs.shape}")
    table = _class_to_category()
    mass = np.array([probs[table == c].sum() for c in _PRODUCT_IDS])
    best = int(np.argmax(mass))
    return _PRODUCT_IDS[best] if mass[best] >= MIN_CATEGORY_MASS else OTHER
