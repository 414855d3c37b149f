"""The console's search playground in headless Chromium: an edited photo, a region drawn with the mouse."""

from __future__ import annotations

import base64
import re
from typing import Any

import pytest

from browser import PHONE, Console, ConsoleUser, screenshot
from conftest import grant_instance
from lookalike.domain.errors import LookalikeError
from lookalike.domain.filters import parse_filter
from lookalike.domain.models import Attributes
from photos import EDITS, encode, load_photo

pytestmark = pytest.mark.slow

CATALOGUE = ("chelsea", "coffee", "astronaut", "rocket", "camera", "moon", "coins", "horse", "brick")


def shop_with_pictures(console: Console, name: str = "shop-a") -> ConsoleUser:
    tenant = console.new_tenant(name)
    grant_instance(console.services, tenant.account.id, "shop", capacity=1000, qps=50)
    for slot, photo in enumerate(CATALOGUE):
        console.services.images.add_image(
            tenant.account,
            "shop",
            product_id=photo,
            pic_name=f"{photo}.jpg",
            picture=encode(load_photo(photo)),
            attributes=Attributes(int_attr=slot, str_attr="cat" if photo == "chelsea" else "other"),
        )
    return tenant


def choose_photo(page: Any, data: bytes) -> None:
    page.set_input_files("#picture", files=[{"name": "query.jpg", "mimeType": "image/jpeg", "buffer": data}])


def drop_photo(page: Any, data: bytes) -> None:
    """Drop a file on the drop zone the way a browser does (a DragEvent carrying a DataTransfer)."""
    page.evaluate(
        """(b64) => {
            const bytes = Uint8Array.from(atob(b64), c => c.charCodeAt(0));
            const transfer = new DataTransfer();
            transfer.items.add(new File([bytes], "dropped.jpg", {type: "image/jpeg"}));
            const zone = document.getElementById("drop");
            for (const kind of ["dragover", "drop"]) {
                const init = {dataTransfer: transfer, bubbles: true, cancelable: true};
                zone.dispatchEvent(new DragEvent(kind, init));
            }
        }""",
        base64.b64encode(data).decode("ascii"),
    )


def drag_region(page: Any, start: tuple[float, float], end: tuple[float, float]) -> None:
    """Press, move and release the mouse on the preview, at fractions of its size."""
    preview = page.locator("#draw-img")
    preview.wait_for(state="visible")
    page.wait_for_function("document.getElementById('draw-img').naturalWidth > 0")
    box = preview.bounding_box()
    assert box is not None
    page.mouse.move(box["x"] + box["width"] * start[0], box["y"] + box["height"] * start[1])
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.5, steps=4)
    page.mouse.move(box["x"] + box["width"] * end[0], box["y"] + box["height"] * end[1], steps=4)
    page.mouse.up()


def test_an_edited_photo_finds_its_original_first_with_the_drawn_region(console: Console) -> None:
    tenant = shop_with_pictures(console)
    page = console.page()
    console.sign_in(page, tenant)
    page.goto("/console/instances/shop/search")
    assert page.get_by_role("link", name="Overview").get_attribute("href") == "/console/instances/shop"
    original = load_photo("chelsea")  # 451 x 300
    edited = EDITS["jpeg_q20"](original)
    drop_photo(page, encode(edited))
    assert page.evaluate("document.getElementById('picture').files[0].name") == "dropped.jpg"
    drag_region(page, (0.05, 0.08), (0.93, 0.95))
    region = page.locator("#region").input_value()
    x1, x2, y1, y2 = (int(v) for v in region.split(","))
    width, height = edited.size
    # Pixels of the original photo, not of the (smaller or larger) preview on screen.
    assert abs(x1 - 0.05 * width) <= 3 and abs(x2 - 0.93 * width) <= 3
    assert abs(y1 - 0.08 * height) <= 3 and abs(y2 - 0.95 * height) <= 3
    assert page.locator("#draw-box").is_visible()
    page.get_by_label("Results").fill("5")
    page.get_by_role("button", name="Search", exact=True).click()

    tiles = page.locator("#hits figure")
    tiles.first.wait_for()
    assert tiles.count() == 5
    assert tiles.first.get_attribute("data-product") == "chelsea"
    assert float(tiles.first.locator(".score").inner_text()) > 0.8
    assert page.locator("#detected-region").inner_text() == region  # the region that was searched
    # The region is drawn on the downscaled query photo at the same place, in percentages.
    photo, drawn = page.locator("#query-img").bounding_box(), page.locator("#query-region").bounding_box()
    assert photo is not None and drawn is not None
    assert drawn["x"] - photo["x"] == pytest.approx(photo["width"] * x1 / width, abs=2)
    assert drawn["width"] == pytest.approx(photo["width"] * (x2 - x1) / width, abs=2)
    assert drawn["y"] - photo["y"] == pytest.approx(photo["height"] * y1 / height, abs=2)
    assert drawn["height"] == pytest.approx(photo["height"] * (y2 - y1) / height, abs=2)
    # The result grid shows the stored thumbnails.
    assert page.evaluate("document.querySelector('#hits img').naturalWidth") == 160
    screenshot(page, "search")

    # Narrowed by a filter: only the pictures that pass it come back.
    page.goto("/console/instances/shop/search")
    choose_photo(page, encode(EDITS["border_text"](original)))
    page.get_by_label("Filter").fill('str_attr = "other"')
    page.get_by_role("button", name="Search", exact=True).click()
    page.locator("#hits figure").first.wait_for()
    products = page.locator("#hits figure").evaluate_all("els => els.map(e => e.dataset.product)")
    assert "chelsea" not in products and len(products) == len(CATALOGUE) - 1

    phone = console.page(PHONE)
    console.sign_in(phone, tenant)
    phone.goto("/console/instances/shop/search")
    choose_photo(phone, encode(EDITS["crop70"](original)))
    drag_region(phone, (0.1, 0.1), (0.9, 0.9))
    phone.get_by_role("button", name="Search", exact=True).click()
    phone.locator("#hits figure").first.wait_for()
    assert phone.locator("#hits figure").first.get_attribute("data-product") == "chelsea"
    assert phone.evaluate("document.documentElement.scrollWidth") <= 390
    screenshot(phone, "search-phone")


def parser_message(text: str) -> str:
    with pytest.raises(LookalikeError) as refused:
        parse_filter(text)
    return refused.value.message


def test_bad_input_gets_a_clear_error_and_keeps_the_form(console: Console) -> None:
    tenant = shop_with_pictures(console)
    page = console.page()
    console.sign_in(page, tenant)
    page.goto("/console/instances/shop/search")
    photo = encode(load_photo("coffee"))

    def submit(data: bytes | None, **fields: str) -> Any:
        if data is not None:
            choose_photo(page, data)
        for label, value in fields.items():
            page.get_by_label(label).fill(value)
        with page.expect_response(re.compile(r".*/console/instances/shop/search$")) as answer:
            page.get_by_role("button", name="Search", exact=True).click()
        page.locator("#search-error").wait_for()
        return answer.value

    bad = "int_attr >> 3"
    response = submit(photo, Filter=bad)
    assert response.status == 400
    assert page.locator("#search-error").inner_text() == parser_message(bad)
    assert page.get_by_label("Filter").input_value() == bad  # kept for correcting

    page.get_by_label("Filter").fill("")
    response = submit(photo, Region="300,20,0,100")
    assert response.status == 400
    assert "x1 < x2" in page.locator("#search-error").inner_text()
    response = submit(photo, Region="0,5000,0,100")
    assert "lies outside the 600x400 image" in page.locator("#search-error").inner_text()

    response = submit(photo[: len(photo) // 3], Region="")
    assert response.status == 400
    assert page.locator("#search-error").inner_text() == "The JPEG picture is truncated or corrupt."
    response = submit(b"just some text, not a picture")
    assert response.status == 415
    assert "not a supported picture" in page.locator("#search-error").inner_text()

    # Without a photo (the browser's own check lifted): the server says so too.
    page.evaluate("document.getElementById('picture').removeAttribute('required')")
    page.set_input_files("#picture", files=[])
    response = submit(None)
    assert response.status == 400
    assert page.locator("#search-error").inner_text() == "Choose a picture file."
    assert page.locator("#hits").count() == 0
