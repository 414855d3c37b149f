"""The dashboard in headless Chromium: balance, instance cards with state, pictures against capacity and the
search QPS chart fed by real searches through the native API."""

from __future__ import annotations

import re
from datetime import timedelta

import httpx
import pytest

from browser import PHONE, Console, screenshot
from conftest import grant_instance
from lookalike.api.console.web import money
from photos import encode, load_photo

pytestmark = pytest.mark.slow


def test_dashboard_shows_state_pictures_and_measured_search_qps(console: Console) -> None:
    svc, clock = console.services, console.clock
    tenant = console.new_tenant("shop-a")
    console.top_up(tenant, 12_345, "dash-top-up")
    # A one-month instance that expires two days before the searches below (and is kept 7 days after).
    svc.billing.orders.grant(tenant.account.id, "archive", capacity=10, qps=1, months=1)
    clock.advance(timedelta(days=33))
    svc.lifecycle.sweep()
    gallery = grant_instance(svc, tenant.account.id, "gallery", capacity=50, qps=2)

    photos = {name: encode(load_photo(name)) for name in ("coffee", "rocket", "astronaut")}
    with console.api(tenant) as api:
        for i, data in enumerate(photos.values()):
            added = api.post(
                "/v1/instances/gallery/images",
                data={"product_id": f"sku-{i}", "pic_name": "front.jpg"},
                files={"picture": ("p.jpg", data)},
            )
            assert added.status_code == 200, added.text
        # The clock stands still: at 2 QPS two searches pass in this second and three are throttled.
        codes = [search(api, photos["coffee"]) for _ in range(5)]
        assert sorted(codes) == [200, 200, 429, 429, 429]
        clock.advance(60)
        assert search(api, photos["rocket"]) == 200  # one more, in the next minute
        refused = api.post(
            "/v1/instances/archive/search/picture", files={"picture": ("q.jpg", photos["coffee"])}
        )
        assert refused.status_code != 200  # expired: refused before the rate limit, so not counted

    page = console.page()
    console.sign_in(page, tenant)
    assert page.locator("#balance").inner_text() == money(svc, 12_345)
    assert page.get_by_role("link", name="Billing").first.get_attribute("href") == "/console/billing"

    card = page.locator("article[data-instance='gallery']")
    assert card.locator(".badge").inner_text() == "active"
    assert card.locator(".pictures-count").inner_text() == "3 of 50 stored (6.0%)"
    bar = card.get_by_role("img", name="3 of 50 pictures stored, 6.0%")
    assert bar.locator("span").evaluate("e => e.style.width") == "6%"
    assert card.locator(".auto-renew").inner_text() == "off"
    summary = "Peak 2 of 2 QPS in the last 60 minutes; 3 searches, 3 throttled in 1 minute."
    chart = card.get_by_role("img", name=summary)
    assert chart.evaluate("e => e.tagName") == "svg"
    assert card.locator(".chart-summary").inner_text() == summary
    assert chart.locator("rect.qps-bar").count() == 2 and chart.locator("rect.qps-throttled").count() == 1
    assert chart.locator("line.qps-limit").count() == 1
    # As drawn (no stylesheet may resize the shapes): the peak-2 bar stands on the axis and reaches the limit.
    box, tall = chart.bounding_box(), chart.locator("rect.qps-bar").first.bounding_box()
    assert box is not None and tall is not None
    assert (
        abs(tall["y"] + tall["height"] - (box["y"] + box["height"])) < 2
        and tall["height"] > box["height"] * 0.8
    )
    base = f"/console/instances/{gallery.name}"
    for name, href in (
        ("gallery", base),
        ("Details", base),
        ("Pictures", f"{base}/pictures"),
        ("Search", f"{base}/search"),
    ):
        assert card.get_by_role("link", name=name, exact=True).get_attribute("href") == href
        assert page.request.get(href).status == 200  # the instance's pages exist

    archive = page.locator("article[data-instance='archive']")
    assert archive.locator(".badge").inner_text() == "expired"
    note = archive.locator(".release-note").inner_text()
    assert re.search(r"kept 5 more days and released on \d{4}-\d\d-\d\d \d\d:\d\d UTC", note), note
    assert "Peak 0 of 1 QPS" in archive.locator(".chart-summary").inner_text()
    screenshot(page, "dashboard")

    phone = console.page(PHONE)
    console.sign_in(phone, tenant)
    assert phone.evaluate("document.documentElement.scrollWidth") <= 390
    assert phone.locator("article[data-instance='gallery'] svg.qps-chart").bounding_box()["width"] <= 390
    screenshot(phone, "dashboard-phone")

    # The day before release, one day is left. Past the release moment the card says released until the
    # sweep has purged the instance; then its card is gone and it is listed under "Released instances".
    clock.advance(timedelta(days=4, hours=12))
    page.reload()
    assert "kept 1 more day and released" in archive.locator(".release-note").inner_text()
    clock.advance(timedelta(days=1))
    page.reload()
    assert archive.locator(".badge").inner_text() == "released"
    svc.lifecycle.sweep()
    page.reload()
    assert archive.count() == 0 and card.count() == 1
    released = page.locator("table.released tbody tr")
    assert released.count() == 1 and released.first.locator("td").first.inner_text().startswith("archive")


def search(api: httpx.Client, data: bytes) -> int:
    response = api.post("/v1/instances/gallery/search/picture", files={"picture": ("q.jpg", data)})
    return response.status_code
