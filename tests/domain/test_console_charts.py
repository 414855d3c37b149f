"""The dashboard's QPS chart: a pure function from minutes to an <svg>, read back as XML."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from lookalike.api.console.charts import HEIGHT, TOP, WIDTH, qps_chart, qps_summary
from lookalike.domain.usage import MinuteUsage, UsageWindow

SVG = "{http://www.w3.org/2000/svg}"
T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


def minutes(peaks: list[int], throttled: dict[int, int] | None = None) -> UsageWindow:
    throttled = throttled or {}
    return UsageWindow(
        "ins-1",
        [
            MinuteUsage("ins-1", T0 + timedelta(minutes=i), peak * 2, throttled.get(i, 0), peak)
            for i, peak in enumerate(peaks)
        ],
    )


def parse(points: UsageWindow, limit: float) -> ET.Element:
    return ET.fromstring(str(qps_chart(points, limit)))


def test_bars_limit_line_and_throttle_marks() -> None:
    points = minutes([0] * 57 + [2, 5, 1], throttled={58: 3})
    svg = parse(points, 5)
    assert svg.get("role") == "img"
    label = "Peak 5 of 5 QPS in the last 60 minutes; 16 searches, 3 throttled in 1 minute."
    assert svg.get("aria-label") == label == qps_summary(points, 5)
    assert svg.findtext(f"{SVG}title") == label
    bars = svg.findall(f"{SVG}rect[@class='qps-bar']")
    assert len(bars) == 3  # minutes without searches draw nothing
    heights = [float(b.get("height", 0)) for b in bars]
    assert heights[1] == HEIGHT - TOP  # the peak reaches the top of the plot (the limit is the scale)
    plot = HEIGHT - TOP
    assert heights == [plot * 2 / 5, plot, plot / 5]  # bar height in proportion to the busiest second
    xs = [float(b.get("x", 0)) for b in bars]
    assert xs == sorted(xs) and xs[-1] > WIDTH * 0.95  # the newest minute on the right
    marks = svg.findall(f"{SVG}rect[@class='qps-throttled']")
    assert len(marks) == 1 and marks[0].get("x") == bars[1].get("x")
    assert "10:58 UTC: peak 5 QPS, 10 searches, 3 throttled" in (marks[0].findtext(f"{SVG}title") or "")
    limit = svg.find(f"{SVG}line[@class='qps-limit']")
    assert limit is not None and float(limit.get("y1", -1)) == TOP


def test_idle_hour_and_a_peak_above_the_limit() -> None:
    idle = parse(minutes([0] * 60), 10)
    assert not idle.findall(f"{SVG}rect")
    assert idle.get("aria-label") == "Peak 0 of 10 QPS in the last 60 minutes; 0 searches, none throttled."
    # A busiest second above the limit (two replicas, or a burst across a second boundary) stays on the chart.
    over = parse(minutes([8]), 4)
    bar = over.find(f"{SVG}rect[@class='qps-bar']")
    limit = over.find(f"{SVG}line[@class='qps-limit']")
    assert bar is not None and limit is not None
    assert float(bar.get("y", -1)) == TOP and float(limit.get("y1", -1)) == TOP + (HEIGHT - TOP) / 2


@given(st.lists(st.integers(0, 1000), min_size=1, max_size=120), st.integers(1, 500))
def test_every_bar_fits_the_view(peaks: list[int], limit: int) -> None:
    svg = parse(minutes(peaks), limit)
    for bar in svg.findall(f"{SVG}rect"):
        x, y = float(bar.get("x", -1)), float(bar.get("y", -1))
        w, h = float(bar.get("width", -1)), float(bar.get("height", -1))
        assert 0 <= x <= x + w <= WIDTH + 0.01
        assert 0 <= y <= y + h <= HEIGHT + 0.01
