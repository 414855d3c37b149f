"""ImageNet -> Alibaba product category mapping and the prediction rule."""

from __future__ import annotations

import numpy as np
import pytest

from lookalike.vision.categories import (
    ALIBABA_CATEGORIES,
    MIN_CATEGORY_MASS,
    OTHER,
    all_categories,
    category_name,
    class_category_ids,
    imagenet_class_names,
    predict_category,
)

NAMES = imagenet_class_names()


def idx(name: str) -> int:
    return NAMES.index(name)


def one_hot(*weights: tuple[str, float]) -> np.ndarray:
    p = np.zeros(1000, np.float32)
    for name, w in weights:
        p[idx(name)] = w
    return p


def test_class_names_file() -> None:
    assert len(NAMES) == 1000
    assert len(set(NAMES)) == 1000
    assert NAMES[0] == "tench" and NAMES[281] == "tabby cat" and NAMES[999] == "toilet paper"
    assert all(n == n.strip() and n for n in NAMES)
    names_copy = imagenet_class_names()
    names_copy[0] = "mutated"
    assert imagenet_class_names()[0] == "tench"  # callers cannot corrupt the shared table


def test_every_class_maps_to_a_known_category() -> None:
    table = class_category_ids()
    assert table.shape == (1000,)
    assert set(table.tolist()) == set(ALIBABA_CATEGORIES)  # every category is reachable
    assert (table == OTHER).sum() > 700  # most of ImageNet is not products


@pytest.mark.parametrize(
    ("name", "category"),
    [
        ("cardigan", 0),
        ("sweatshirt", 0),
        ("T-shirt", 0),
        ("gown", 1),
        ("miniskirt", 2),
        ("jeans", 2),
        ("backpack", 3),
        ("purse", 3),
        ("messenger bag", 3),
        ("sneaker", 4),
        ("slip-on shoe", 4),
        ("cowboy boot", 4),
        ("sunglasses", 5),
        ("necklace", 5),
        ("pretzel", 6),
        ("ice cream", 6),
        ("lipstick", 7),
        ("face powder", 7),
        ("beer bottle", 8),
        ("water bottle", 8),
        ("couch", 9),
        ("wardrobe", 9),
        ("teddy bear", 20),
        ("bra", 21),
        ("swim trunks / shorts", 21),
        ("laptop computer", 22),
        ("mobile phone", 22),
        ("computer mouse", 22),
        ("tabby cat", OTHER),
        ("espresso", OTHER),
        ("missile", OTHER),
        ("broccoli", OTHER),
    ],
)
def test_spot_checks(name: str, category: int) -> None:
    assert class_category_ids()[idx(name)] == category


def test_all_categories() -> None:
    cats = all_categories()
    assert cats[0] == (0, "Tops") and cats[-1] == (OTHER, "Other")
    assert dict(cats) == ALIBABA_CATEGORIES
    assert category_name(22) == "Digital devices"


def test_confident_class_wins() -> None:
    assert predict_category(one_hot(("sneaker", 0.97), ("tabby cat", 0.03))) == 4


def test_mass_is_summed_over_classes() -> None:
    # No single shoe class beats the cat, but together they do.
    p = one_hot(("sneaker", 0.12), ("sandal", 0.12), ("slip-on shoe", 0.12), ("tabby cat", 0.3))
    p[p == 0] = (1 - p.sum()) / (p == 0).sum()
    assert predict_category(p) == 4


def test_other_when_no_product_has_enough_mass() -> None:
    assert predict_category(one_hot(("tabby cat", 0.9), ("sneaker", 0.1))) == OTHER
    assert predict_category(np.full(1000, 1e-3, np.float32)) == OTHER
    below = one_hot(("jeans", MIN_CATEGORY_MASS - 0.01), ("tabby cat", 1 - MIN_CATEGORY_MASS + 0.01))
    assert predict_category(below) == OTHER
    at = one_hot(("jeans", MIN_CATEGORY_MASS + 0.01), ("tabby cat", 1 - MIN_CATEGORY_MASS - 0.01))
    assert predict_category(at) == 2


def test_rejects_wrong_shape() -> None:
    with pytest.raises(ValueError):
        predict_category(np.zeros((2, 1000), np.float32))
    with pytest.raises(ValueError):
        predict_category(np.zeros(999, np.float32))
