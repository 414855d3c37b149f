"""The console's pictures pages in headless Chromium: add, browse, filter, page, open, delete, thumbnails."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest

from browser import PHONE, Console, ConsoleUser, screenshot
from conftest import grant_instance
from lookalike.domain.errors import LookalikeError
from lookalike.domain.filters import parse_filter
from lookalike.domain.models import Attributes
from photos import PHOTO_NAMES, encode, load_photo

pytestmark = pytest.mark.slow


def add_through_form(
    page: Any, data: bytes, product_id: str, pic_name: str, instance: str = "shop", **attributes: str
) -> Any:
    page.goto(f"/console/instances/{instance}/pictures")
    page.locator("#add > summary").click()
    page.set_input_files(
        "input[name=picture]", files=[{"name": "p.jpg", "mimeType": "image/jpeg", "buffer": data}]
    )
    page.get_by_label("ProductId", exact=True).first.fill(product_id)
    page.get_by_label("PicName").fill(pic_name)
    if attributes:
        page.locator("#add .more > summary").click()
        for name, value in attributes.items():
            page.locator(f"#add [name={name}]").fill(value)
    with page.expect_response(re.compile(rf".*/console/instances/{instance}/pictures$")) as answer:
        page.get_by_role("button", name="Add picture").click()
    page.wait_for_load_state()
    return answer.value


def test_add_browse_filter_page_open_and_delete(console: Console) -> None:
    tenant = console.new_tenant("shop-a")
    grant_instance(console.services, tenant.account.id, "shop", capacity=1000, qps=50)
    page = console.page()
    console.sign_in(page, tenant)

    coffee = encode(load_photo("coffee"))
    add_through_form(
        page, coffee, "mug-1", "front.jpg", int_attr="7", str_attr="red", custom_content='{"a": 1}'
    )
    page.wait_for_url(re.compile(r".*/console/instances/shop/pictures/\d+$"))
    assert page.get_by_role("status").inner_text() == "Added picture front.jpg of product mug-1."
    assert page.locator("#f-product").inner_text() == "mug-1"
    assert page.evaluate("document.querySelector('.big img').naturalWidth") == 160
    add_through_form(page, encode(load_photo("astronaut")), "suit-1", "side.jpg")
    assert page.get_by_role("status").inner_text() == "Added picture side.jpg of product suit-1."
    # The rest through the service, to fill more than one page (24 a page).
    for slot, photo in enumerate([*PHOTO_NAMES, "chelsea"]):  # 22 photos + 1
        console.services.images.add_image(
            tenant.account,
            "shop",
            product_id=f"p-{photo}" if slot < len(PHOTO_NAMES) else "p-extra",
            pic_name=f"{photo}.jpg",
            picture=encode(load_photo(photo)),
            attributes=Attributes(int_attr=100 + slot),
        )

    page.goto("/console/instances/shop/pictures")
    assert page.locator("#summary").inner_text().startswith("25 pictures · page 1 of 2")
    assert page.locator(".grid figure").count() == 24
    assert page.locator(".grid figure").first.get_attribute("data-product") == "mug-1"
    broken = page.evaluate(
        "[...document.querySelectorAll('.grid img')].filter(i => i.naturalWidth === 0).length"
    )
    assert broken == 0
    assert page.get_by_role("link", name="Search").get_attribute("href") == "/console/instances/shop/search"
    screenshot(page, "pictures")
    page.get_by_role("link", name="Next page").click()
    assert page.locator(".grid figure").count() == 1
    assert page.locator("#summary").inner_text().startswith("25 pictures · page 2 of 2")
    response = page.goto("/console/instances/shop/pictures?page=9")
    assert response.status == 200 and "Page 9 is past the end" in page.locator("#past-end").inner_text()
    page.get_by_role("link", name="Go to page 1").click()
    assert page.locator(".grid figure").count() == 24
    response = page.goto("/console/instances/shop/pictures?page=abc")
    assert response.status == 400 and "whole number" in page.locator("#list-error").inner_text()

    page.goto("/console/instances/shop/pictures")
    page.get_by_label("Filter").fill('str_attr = "red" OR int_attr >= 121')
    page.get_by_role("button", name="Show").click()
    shown = page.locator(".grid figure").evaluate_all("els => els.map(e => e.dataset.product)")
    assert shown == ["mug-1", "p-text", "p-extra"]
    bad = 'str_attr = "red'
    response = page.goto(
        "/console/instances/shop/pictures?filter=" + bad.replace('"', "%22").replace(" ", "+")
    )
    assert response.status == 400
    with pytest.raises(LookalikeError) as refused:
        parse_filter(bad)
    assert page.locator("#list-error").inner_text() == refused.value.message
    page.goto("/console/instances/shop/pictures?product_id=suit-1")
    assert page.locator(".grid figure").count() == 1

    page.locator(".grid figure a").first.click()
    page.wait_for_url(re.compile(r".*/pictures/\d+$"))
    assert page.get_by_role("heading", name="Picture side.jpg").is_visible()
    screenshot(page, "picture")
    page.get_by_role("button", name="Delete picture side.jpg").click()
    page.wait_for_url("**/console/instances/shop/pictures")
    assert page.get_by_role("status").inner_text() == "Deleted picture side.jpg of product suit-1."
    assert page.locator("#summary").inner_text().startswith("24 pictures")
    assert page.locator('.grid figure[data-product="suit-1"]').count() == 0
    # Gone from search too (the data-plane delete ran, index included).
    with console.api(tenant) as api:
        found = api.post(
            "/v1/instances/shop/search/picture",
            files={"picture": ("q.jpg", encode(load_photo("astronaut")), "image/jpeg")},
            data={"num": "30"},
        )
    assert found.status_code == 200
    assert "suit-1" not in [r["product_id"] for r in found.json()["results"]]

    phone = console.page(PHONE)
    console.sign_in(phone, tenant)
    for path in ("/console/instances/shop/pictures", page.url.replace(console.base_url, "")):
        phone.goto(path)
        assert phone.evaluate("document.documentElement.scrollWidth") <= 390


def test_add_errors_are_shown_on_the_page_and_add_nothing(console: Console) -> None:
    tenant = console.new_tenant("shop-a")
    grant_instance(console.services, tenant.account.id, "shop", capacity=1, qps=5)
    page = console.page()
    console.sign_in(page, tenant)
    photo = encode(load_photo("coffee"))

    response = add_through_form(page, photo[: len(photo) // 2], "mug-1", "front.jpg", int_attr="3")
    assert response.status == 400
    assert page.locator("#add-error").inner_text() == "The JPEG picture is truncated or corrupt."
    assert page.get_by_label("PicName").input_value() == "front.jpg"  # kept for the next try
    assert page.locator("#add [name=int_attr]").input_value() == "3"
    tiny = encode(load_photo("coffee").resize((80, 60)))
    response = add_through_form(page, tiny, "mug-1", "front.jpg")
    assert (
        response.status == 400 and "each side must be 100 to 4096" in page.locator("#add-error").inner_text()
    )
    response = add_through_form(page, photo, "mug-1", "front.jpg", int_attr="seven")
    assert response.status == 400 and "int_attr must be an integer" in page.locator("#add-error").inner_text()
    assert console.services.images.list_pictures(tenant.account, "shop").total == 0

    add_through_form(page, photo, "mug-1", "front.jpg")
    response = add_through_form(page, encode(load_photo("moon")), "mug-2", "front.jpg")
    assert response.status == 409
    assert "exceeds the limit" in page.locator("#add-error").inner_text()
    assert console.services.images.list_pictures(tenant.account, "shop").total == 1

    # Over the add rate (1 a second here; the test clock stands still): refused with the reason, none added.
    grant_instance(console.services, tenant.account.id, "slow", capacity=10, qps=5, add_qps=1)
    assert add_through_form(page, photo, "a", "1.jpg", instance="slow").status == 303
    response = add_through_form(page, photo, "b", "2.jpg", instance="slow")
    assert response.status == 429 and "flow control" in page.locator("#add-error").inner_text()
    assert console.services.images.list_pictures(tenant.account, "slow").total == 1

    # A lapsed subscription: browsing still works, adding is refused with the reason.
    lapsed = console.services.billing.orders.grant(tenant.account.id, "old", capacity=10, qps=1, months=1)
    console.clock.advance(timedelta(days=33))
    console.services.lifecycle.sweep()
    assert console.services.instances_repo.get(lapsed.id).status == "expired"  # type: ignore[union-attr]
    page.goto("/console/instances/old/pictures")
    assert "is expired" in page.locator(".warning").inner_text()
    page.locator("#add > summary").click()
    page.set_input_files(
        "input[name=picture]", files=[{"name": "p.jpg", "mimeType": "image/jpeg", "buffer": photo}]
    )
    page.get_by_label("ProductId", exact=True).first.fill("x")
    page.get_by_label("PicName").fill("y")
    page.get_by_role("button", name="Add picture").click()
    assert "subscription has expired" in page.locator("#add-error").inner_text()


def answer(page: Any, path: str) -> tuple[int, str]:
    response = page.goto(path)
    return response.status, page.locator("main").inner_text()


def test_another_tenants_instance_answers_like_an_unknown_one(console: Console) -> None:
    owner = console.new_tenant("shop-a")
    grant_instance(console.services, owner.account.id, "shop", capacity=10, qps=5)
    console.services.images.add_image(
        owner.account, "shop", product_id="secret-sku", pic_name="s.jpg", picture=encode(load_photo("coffee"))
    )
    image_id = console.services.images.list_pictures(owner.account, "shop").records[0].id
    stranger: ConsoleUser = console.new_tenant("shop-b")
    page = console.page()
    console.sign_in(page, stranger)
    for suffix in ("/pictures", "/search", f"/thumbnails/{image_id}", f"/pictures/{image_id}"):
        theirs = answer(page, f"/console/instances/shop{suffix}")
        unknown = answer(page, f"/console/instances/no-such-shop{suffix}")
        assert theirs == unknown
        assert theirs[0] == 404 and "secret-sku" not in theirs[1]
    # Posting (with the stranger's own valid CSRF token) changes nothing.
    page.goto("/console/dashboard")
    token = page.locator("input[name=csrf_token]").first.input_value()
    deleted = page.request.post(
        f"/console/instances/shop/pictures/{image_id}/delete", form={"csrf_token": token}
    )
    unknown_delete = page.request.post(
        f"/console/instances/no-such-shop/pictures/{image_id}/delete", form={"csrf_token": token}
    )
    assert deleted.status == unknown_delete.status == 404
    assert console.services.images.list_pictures(owner.account, "shop").total == 1

    # The owner (and the operator) get the thumbnail, privately cached.
    for user in (owner, console.operator()):
        viewer = console.page()
        console.sign_in(viewer, user)
        got = viewer.request.get(f"/console/instances/shop/thumbnails/{image_id}")
        assert got.status == 200 and got.headers["content-type"] == "image/jpeg"
        assert got.headers["cache-control"].startswith("private")
        assert got.body()[:3] == b"\xff\xd8\xff"


def test_an_oversized_upload_is_refused_before_it_is_read(console: Console) -> None:
    tenant = console.new_tenant("shop-a")
    grant_instance(console.services, tenant.account.id, "shop", capacity=10, qps=5)
    page = console.page()
    console.sign_in(page, tenant)
    page.goto("/console/instances/shop/pictures")
    token = page.locator("input[name=csrf_token]").first.input_value()
    huge = b"\xff\xd8" + b"\0" * (console.services.settings.image_limits.max_bytes * 2 + 2 * 1024 * 1024)
    response = page.request.post(
        "/console/instances/shop/pictures",
        multipart={
            "csrf_token": token,
            "product_id": "p",
            "pic_name": "big.jpg",
            "picture": {"name": "big.jpg", "mimeType": "image/jpeg", "buffer": huge},
        },
    )
    assert response.status == 413 and "Upload too large" in response.text()
    assert console.services.images.list_pictures(tenant.account, "shop").total == 0
