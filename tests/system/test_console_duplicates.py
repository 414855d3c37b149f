"""The console's duplicate report in headless Chromium: start it, watch it run, see the groups side by side,
keep one picture of a group (after a confirmation) and download the CSV."""

from __future__ import annotations

import csv
import io
import re

import pytest

from browser import Console, screenshot
from conftest import grant_instance
from photos import encode, grayscale, jpeg_q20, load_photo, resize_50

pytestmark = pytest.mark.slow

PLANTED = ("coffee", "astronaut", "chelsea")
UNRELATED = ("rocket", "camera", "coins")


def test_find_duplicates_keep_one_and_export(console: Console) -> None:
    tenant = console.new_tenant("dup-shop")
    grant_instance(console.services, tenant.account.id, "shop", capacity=1000, qps=50)
    images = console.services.images
    for name in PLANTED:
        photo = load_photo(name)
        for suffix, picture in (
            ("", photo),
            ("-small", resize_50(photo)),
            ("-grey", grayscale(photo)),
            ("-q20", jpeg_q20(photo)),
        ):
            images.add_image(
                tenant.account,
                "shop",
                product_id=f"p-{name}{suffix}",
                pic_name=f"{name}{suffix}.jpg",
                picture=encode(picture),
            )
    for name in UNRELATED:
        images.add_image(
            tenant.account,
            "shop",
            product_id=f"u-{name}",
            pic_name=f"{name}.jpg",
            picture=encode(load_photo(name)),
        )

    page = console.page()
    console.sign_in(page, tenant)
    page.goto("/console/instances/shop")
    page.get_by_role("link", name="Duplicates").click()
    page.wait_for_url("**/console/instances/shop/duplicates")
    assert page.locator("#report-status").inner_text() == "No report yet."
    page.get_by_role("button", name="Find duplicates").click()
    page.wait_for_url("**/console/instances/shop/duplicates")
    assert page.get_by_role("status").inner_text() == "Duplicate report started."
    assert "is running: 0 of about 15 pictures scanned" in page.locator("#report-status").inner_text()
    assert page.locator("#report-progress").count() == 1
    assert page.locator('meta[http-equiv="refresh"]').count() == 1  # the page follows the scan by itself
    assert page.get_by_role("button", name="Find duplicates").is_disabled()

    console.services.tasks.run_pending()  # the worker's turn (no background threads in tests)
    page.reload()
    assert re.search(r"3 groups of copies, 12 pictures in them", page.locator("#report-status").inner_text())
    groups = page.locator("section.dupgroup")
    assert groups.count() == 3
    for g in range(3):
        names = groups.nth(g).locator("figure").evaluate_all("els => els.map(e => e.dataset.pic)")
        stem = names[0].removesuffix(".jpg")
        assert stem in PLANTED and sorted(names) == sorted(
            f"{stem}{s}.jpg" for s in ("", "-small", "-grey", "-q20")
        )
    broken = page.evaluate(
        "[...document.querySelectorAll('.dupgroup img')].filter(i => i.naturalWidth === 0).length"
    )
    assert broken == 0 and page.locator(".dupgroup img").count() == 12
    screenshot(page, "duplicates")

    first = groups.nth(0)
    stem = first.locator("figure").first.get_attribute("data-pic").removesuffix(".jpg")
    keep = f"{stem}-small.jpg"
    first.get_by_label(f"Keep {keep}").check()
    first.get_by_role("button", name="Keep one, delete the others…").click()
    page.wait_for_url(re.compile(r".*/duplicates/\d+/groups/\d+/keep\?image_id=\d+$"))
    assert page.locator("#kept figure").get_attribute("data-pic") == keep
    doomed = sorted(page.locator("#doomed figure").evaluate_all("els => els.map(e => e.dataset.pic)"))
    assert doomed == sorted(f"{stem}{s}.jpg" for s in ("", "-grey", "-q20"))
    # Cancel deletes nothing.
    page.get_by_role("link", name="Cancel").click()
    page.wait_for_url("**/console/instances/shop/duplicates")
    assert page.locator("section.dupgroup").count() == 3
    page.go_back()
    page.get_by_role("button", name="Delete 3 pictures").click()
    page.wait_for_url("**/console/instances/shop/duplicates")
    notice = page.get_by_role("status").inner_text()
    assert notice.startswith("Kept one picture of group 1 and deleted 3: ") and stem in notice
    assert page.locator("section.dupgroup").count() == 2
    assert re.search(r"2 groups of copies, 8 pictures", page.locator("#report-status").inner_text())
    left = {r.pic_name for r in images.list_pictures(tenant.account, "shop").records}
    assert keep in left and not ({f"{stem}{s}.jpg" for s in ("", "-grey", "-q20")} & left)
    assert len(left) == 12

    # The CSV, through the session.
    link = page.get_by_role("link", name="Download CSV").get_attribute("href")
    console.clock.advance(1.1)  # exports are console actions: 1 per second per instance
    answer = page.request.get(link)
    assert answer.status == 200 and answer.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(answer.text())))
    assert rows[0] == ["group", "suggested_keep", "product_id", "pic_name", "score"] and len(rows) == 9

    # Another tenant sees nothing of it.
    stranger = console.new_tenant("stranger")
    other = console.page()
    console.sign_in(other, stranger)
    assert other.goto("/console/instances/shop/duplicates").status == 404
    assert other.goto(link).status == 404
