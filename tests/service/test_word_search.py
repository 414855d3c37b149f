"""Search by words: the query's words matched against ProductId, PicName and CustomContent through the
full-text index (SQLite FTS5 here, PostgreSQL tsvector on the second pass), fused with the visual route."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from conftest import Tenant, make_tenant
from lookalike.domain.models import Attributes, AttributeUpdate
from lookalike.domain.words import coverage, query_words, search_text, words
from lookalike.service.container import Services
from lookalike.service.images import SearchOptions
from photos import encode, load_photo

# --- the words themselves (pure) ---


def test_words_split_fold_and_keep_cjk_ideographs_apart() -> None:
    assert words("Red-Sneaker_front.JPG") == ["red", "sneaker", "front", "jpg"]
    assert words("Café CRÈME") == ["cafe", "creme"]
    assert words("Sneakers glass boxes") == ["sneaker", "glass", "boxe"]
    assert words("红色连衣裙 dress") == ["红", "色", "连", "衣", "裙", "dress"]
    assert query_words("a photo of the red sneakers.jpg") == ["red", "sneaker"]


@given(st.text(max_size=60), st.text(max_size=60))
def test_a_picture_holds_every_word_of_its_own_texts(name: str, content: str) -> None:
    stored = search_text([name, content])
    query = query_words(f"{name} {content}")
    assert coverage(query, stored) == (1.0 if query else 0.0)
    assert len(stored.split()) == len(set(stored.split()))
    assert all(w.isalnum() for w in stored.split())


@given(st.text(max_size=80))
def test_words_are_stable_under_repetition(text: str) -> None:
    assert words(" ".join(words(text))) == words(text)


# --- through the service and the full-text index ---


def add(services: Services, tenant: Tenant, product: str, name: str, photo: str, content: str = "") -> None:
    services.images.add_image(
        tenant.account,
        tenant.instance.name,
        product_id=product,
        pic_name=name,
        picture=encode(load_photo(photo)),
        custom_content=content,
        attributes=Attributes(int_attr=1 if "sneaker" in name else 2),
    )


def found(services: Services, tenant: Tenant, text: str, **options: object) -> list[tuple[str, float]]:
    result = services.text_search.search(
        tenant.account, tenant.instance.name, text, SearchOptions(**options)  # type: ignore[arg-type]
    )
    return [(hit.record.pic_name, round(hit.score, 3)) for hit in result.hits]


def test_words_of_names_and_custom_content_find_the_picture_first(services: Services, tenant: Tenant) -> None:
    add(services, tenant, "sku-100", "red-sneaker_front.jpg", "coffee")
    add(services, tenant, "sku-200", "blue_mug.png", "rocket", "Ceramic mug, dishwasher safe")
    add(services, tenant, "sku-300", "IMG_0042.jpg", "astronaut", "连衣裙 summer collection")
    assert found(services, tenant, "red sneakers")[0] == ("red-sneaker_front.jpg", 1.0)
    assert found(services, tenant, "a ceramic mug")[0] == ("blue_mug.png", 1.0)
    assert found(services, tenant, "SKU-300")[0][0] == "IMG_0042.jpg"
    assert found(services, tenant, "连衣裙")[0] == ("IMG_0042.jpg", 1.0)
    # Half the words: half the word score, still first here (no picture holds both).
    assert found(services, tenant, "dishwasher rocketship")[0] == ("blue_mug.png", 0.5)
    # Filters, paging and thresholds apply to word matches as to every hit.
    assert found(services, tenant, "red sneakers", filter="int_attr = 2")[0][0] != "red-sneaker_front.jpg"
    assert [n for n, _ in found(services, tenant, "ceramic mug", score_threshold="0.99")] == ["blue_mug.png"]


def test_changed_custom_content_and_deleted_pictures_are_matched_as_they_are_now(
    services: Services, tenant: Tenant
) -> None:
    add(services, tenant, "sku-1", "a.jpg", "coffee", "leather wallet")
    services.images.update_image(
        tenant.account,
        "shop",
        product_id="sku-1",
        pic_name="a.jpg",
        change=AttributeUpdate(custom_content="silk scarf"),
    )
    assert found(services, tenant, "silk scarf")[0] == ("a.jpg", 1.0)
    assert ("a.jpg", 1.0) not in found(services, tenant, "leather wallet")
    add(services, tenant, "sku-1", "a.jpg", "coffee", "wool hat")  # overwritten
    assert found(services, tenant, "wool hat")[0] == ("a.jpg", 1.0)
    assert ("a.jpg", 1.0) not in found(services, tenant, "silk scarf")
    services.images.delete_images(tenant.account, "shop", product_id="sku-1")
    assert found(services, tenant, "wool hat") == []


def test_another_tenants_words_are_never_found(services: Services, tenant: Tenant) -> None:
    other = make_tenant(services, "rival", "rival-shop")
    add(services, other, "secret-sku", "prototype_gadget.jpg", "camera", "unreleased prototype gadget")
    add(services, tenant, "mine", "plain.jpg", "coins")
    assert all(name != "prototype_gadget.jpg" for name, _ in found(services, tenant, "prototype gadget"))
    assert found(services, other, "prototype gadget")[0] == ("prototype_gadget.jpg", 1.0)
