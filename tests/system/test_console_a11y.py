"""Every console page a signed-in user can reach by links, at 1280 px and 390 px: no horizontal overflow,
text contrast of at least 4.5:1 (3:1 for large text, WCAG AA), every control reachable with the Tab key and
showing a focus ring, every form control labelled.

The pages are found by following the console's own links from the dashboard (tenant) and the operator
page (operator), so a new page is checked without being listed here.
"""

from __future__ import annotations

from collections import deque
from typing import Any
from urllib.parse import urlsplit

import pytest

from browser import DESKTOP, PHONE, Console, ConsoleUser
from conftest import grant_instance
from photos import PHOTO_NAMES, encode, load_photo

pytestmark = pytest.mark.slow

# Links that download, end the session or serve pictures are not pages.
SKIP_SUFFIXES = (".pdf", ".csv", ".jpg", ".png")
MAX_PAGES = 40

CONTRAST_JS = """
() => {
  const parse = (c) => {
    const m = c.match(/rgba?\\(([^)]+)\\)/);
    if (!m) return null;
    const p = m[1].split(',').map((x) => parseFloat(x));
    return {r: p[0], g: p[1], b: p[2], a: p.length > 3 ? p[3] : 1};
  };
  const lum = ({r, g, b}) => {
    const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
  };
  const background = (el) => {
    for (let e = el; e; e = e.parentElement) {
      const c = parse(getComputedStyle(e).backgroundColor);
      if (c && c.a > 0.5) return c;
    }
    return {r: 255, g: 255, b: 255, a: 1};
  };
  const problems = [];
  for (const el of document.querySelectorAll('body *')) {
    const own = [...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim());
    if (!own) continue;
    const style = getComputedStyle(el);
    const box = el.getBoundingClientRect();
    if (style.visibility === 'hidden' || style.display === 'none') continue;
    if (box.width === 0 || box.height === 0) continue;
    if (box.right < 0 || box.bottom < 0) continue;  // off-screen skip link
    const fg = parse(style.color), bg = background(el);
    const [hi, lo] = [lum(fg), lum(bg)].sort((a, b) => b - a);
    const ratio = (hi + 0.05) / (lo + 0.05);
    const size = parseFloat(style.fontSize), bold = parseInt(style.fontWeight) >= 700;
    const large = size >= 24 || (bold && size >= 18.66);
    if (ratio < (large ? 3 : 4.5)) {
      const text = el.textContent.trim().slice(0, 40);
      problems.push(`${el.tagName.toLowerCase()} "${text}" ${ratio.toFixed(2)}`);
    }
  }
  return problems;
}
"""

# A radio group is one Tab stop (arrow keys move inside it), so it counts once.
FOCUSABLE_JS = """
() => new Set([...document.querySelectorAll('a[href], button, input, select, textarea, summary, [tabindex]')]
  .filter((e) => e.type !== 'hidden' && !e.disabled && e.tabIndex >= 0)
  .filter((e) => e.checkVisibility({visibilityProperty: true}))  // also skips closed <details>
  .map((e, i) => e.type === 'radio' ? `radio:${e.form && e.form.id}:${e.name}` : i)).size
"""

UNLABELLED_JS = """
() => [...document.querySelectorAll('input, select, textarea')]
  .filter((e) => e.type !== 'hidden' && e.type !== 'submit')
  .filter((e) => !(e.labels && e.labels.length) && !e.getAttribute('aria-label')
                 && !e.getAttribute('aria-labelledby') && !e.getAttribute('title'))
  .map((e) => e.name || e.id || e.outerHTML.slice(0, 60))
"""


# Pages reached through GET forms rather than links: the quotes shown before paying.
FORM_PAGES = [
    "/console/buy/quote?package_id=2.5m-5qps&name=new-shop&service_type=product&unit=month&count=1",
    "/console/buy/trial?name=new-shop&service_type=product",
    "/console/instances/shop-a-main/renew?package_id=2.5m-5qps&unit=year&count=1",
]


def _pages(page: Any, start: str) -> list[str]:
    """Console pages reachable from `start` by GET links (breadth first, at most MAX_PAGES)."""
    seen: list[str] = []
    queue = deque([start])
    while queue and len(seen) < MAX_PAGES:
        path = queue.popleft()
        if path in seen:
            continue
        response = page.goto(path)
        assert response is not None and response.ok, f"{path}: HTTP {response and response.status}"
        seen.append(path)
        for href in page.eval_on_selector_all("a[href]", "els => els.map(e => e.getAttribute('href'))"):
            parts = urlsplit(href)
            if parts.scheme or parts.netloc or not parts.path.startswith("/console"):
                continue
            if parts.path.endswith(SKIP_SUFFIXES) or "/static/" in parts.path:
                continue
            target = parts.path + (f"?{parts.query}" if parts.query else "")
            if target not in seen and target not in queue:
                queue.append(target)
    return seen


def _check_page(page: Any, path: str, width: int) -> list[str]:
    problems: list[str] = []
    response = page.goto(path)
    if response is None or not response.ok:
        problems.append(f"{path}: HTTP {response and response.status}")
    overflow = page.evaluate("document.documentElement.scrollWidth")
    if overflow > width:
        problems.append(f"{path} @{width}: page is {overflow}px wide")
    problems += [f"{path} @{width}: contrast {p}" for p in page.evaluate(CONTRAST_JS)]
    problems += [f"{path}: unlabelled control {n}" for n in page.evaluate(UNLABELLED_JS)]
    if width == DESKTOP["width"]:
        problems += _keyboard(page, path)
    return problems


def _keyboard(page: Any, path: str) -> list[str]:
    """Tab through the page: every visible control takes the focus once, with a visible focus ring."""
    expected = page.evaluate(FOCUSABLE_JS)
    page.evaluate("document.activeElement && document.activeElement.blur()")
    focused: set[str] = set()
    no_ring: list[str] = []
    for _ in range(expected + 5):
        page.keyboard.press("Tab")
        info = page.evaluate(
            """() => { const e = document.activeElement; if (!e || e === document.body) return null;
                 const s = getComputedStyle(e);
                 if (!e.dataset.a11yId) e.dataset.a11yId = Math.random().toString(36).slice(2);
                 const ring = s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) > 0;
                 return {id: e.dataset.a11yId, ring: ring,
                         what: e.tagName + ' ' + (e.textContent || e.name || '').trim().slice(0, 30)}; }"""
        )
        if info is None:
            continue
        focused.add(info["id"])
        if not info["ring"]:
            no_ring.append(info["what"])
    problems = []
    if len(focused) < expected:
        problems.append(f"{path}: Tab reached {len(focused)} of {expected} controls")
    problems += [f"{path}: no focus ring on {w}" for w in no_ring]
    return problems


def _tenant_with_a_picture(console: Console) -> ConsoleUser:
    tenant = console.new_tenant("shop-a")
    grant_instance(console.services, tenant.account.id, "shop-a-main", capacity=1000, qps=5)
    picture = encode(load_photo(PHOTO_NAMES[0]))
    console.services.images.add_image(
        tenant.account, "shop-a-main", product_id="p1", pic_name="front", picture=picture
    )
    return tenant


@pytest.mark.parametrize("who", ["tenant", "operator", "visitor"])
def test_every_page_reflows_keeps_contrast_and_works_by_keyboard(console: Console, who: str) -> None:
    tenant = _tenant_with_a_picture(console)
    user = {"tenant": tenant, "operator": console.operator(), "visitor": None}[who]
    starts = {"tenant": "/console/dashboard", "operator": "/console/operator", "visitor": "/console/sign-in"}
    start = starts[who]
    problems: list[str] = []
    blocked: list[str] = []
    paths: list[str] = []
    for viewport in (DESKTOP, PHONE):
        page = console.page(viewport)
        # The pages' Content-Security-Policy must not block anything the pages themselves use.
        page.on("console", lambda m: blocked.append(m.text) if "Content Security Policy" in m.text else None)
        if user is not None:
            console.sign_in(page, user)
        paths = paths or _pages(page, start) + (FORM_PAGES if who == "tenant" else [])
        for path in paths:
            problems += _check_page(page, path, viewport["width"])
    assert len(paths) >= (1 if user is None else 5), paths
    assert not problems + blocked, "\n".join(problems + blocked)
