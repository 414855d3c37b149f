"""Small inline SVG charts drawn on the server: no script, no chart library, readable without styles.

The QPS chart is one bar per minute (the busiest second's searches), a dashed line at the package's QPS
limit and a mark above every minute in which searches were throttled. The SVG is an image to assistive
technology (role="img") whose name is the same summary the page prints beside it.
"""

from __future__ import annotations

from markupsafe import Markup, escape

from lookalike.domain.usage import UsageWindow

WIDTH = 300  # viewBox units; the SVG itself scales to its box
HEIGHT = 80
TOP = 8  # room for the throttle marks
BAR = "#0b57d0"  # the console's accent
THROTTLED = "#b3261e"  # the console's danger red
LIMIT = "#1b1d21"
GRID = "#c9ced6"


def qps_summary(window: UsageWindow, limit: float) -> str:
    """One sentence: 'Peak 3 of 5 QPS in the last 60 minutes; 12 searches, 2 throttled in 1 minute.'"""
    text = (
        f"Peak {window.peak_per_second:,} of {limit:,g} QPS in the last {len(window.minutes)} minutes; "
        f"{window.searches:,} searches"
    )
    if window.throttled:
        minutes = window.throttled_minutes
        text += f", {window.throttled:,} throttled in {minutes} minute{'' if minutes == 1 else 's'}"
    else:
        text += ", none throttled"
    return text + "."


def qps_chart(window: UsageWindow, limit: float, *, label: str | None = None) -> Markup:
    """The chart as an <svg> element, oldest minute on the left."""
    name = label or qps_summary(window, limit)
    points = window.minutes
    top = max(limit, window.peak_per_second) or 1
    plot = HEIGHT - TOP

    def y(value: float) -> float:
        return round(HEIGHT - plot * value / top, 2)

    step = WIDTH / max(len(points), 1)
    parts = [
        f'<svg class="qps-chart" viewBox="0 0 {WIDTH} {HEIGHT}" preserveAspectRatio="none" role="img" '
        f'aria-label="{escape(name)}" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(name)}</title>",
        f'<line x1="0" y1="{HEIGHT}" x2="{WIDTH}" y2="{HEIGHT}" stroke="{GRID}" '
        'vector-effect="non-scaling-stroke"/>',
    ]
    for i, point in enumerate(points):
        x = round(i * step + step * 0.1, 2)
        width = round(step * 0.8, 2)
        tip = f"{point.minute:%H:%M} UTC: peak {point.peak_per_second} QPS, {point.searches} searches"
        if point.throttled:
            tip += f", {point.throttled} throttled"
        if point.peak_per_second:
            top_y = y(point.peak_per_second)
            height = round(HEIGHT - top_y, 2)
            parts.append(
                f'<rect class="qps-bar" x="{x}" y="{top_y}" width="{width}" height="{height}" '
                f'fill="{BAR}"><title>{escape(tip)}</title></rect>'
            )
        if point.throttled:
            parts.append(
                f'<rect class="qps-throttled" x="{x}" y="0" width="{width}" height="{TOP - 2}" '
                f'fill="{THROTTLED}"><title>{escape(tip)}</title></rect>'
            )
    parts.append(
        f'<line class="qps-limit" x1="0" y1="{y(limit)}" x2="{WIDTH}" y2="{y(limit)}" stroke="{LIMIT}" '
        'stroke-width="1.5" stroke-dasharray="4 3" vector-effect="non-scaling-stroke"/>'
    )
    parts.append("</svg>")
    return Markup("".join(parts))
