"""A minimal PDF writer for plain-text documents (receipts): A4 pages, the built-in Helvetica font.

Small enough to keep instead of a PDF library: lines of Latin text, an optional bold title, page breaks
every PAGE_LINES lines. Text is encoded as WinAnsi (cp1252), the built-in fonts' encoding; characters
outside it are replaced, never dropped silently.
"""

from __future__ import annotations

import textwrap
from typing import Final

PAGE_WIDTH: Final = 595  # A4 in points
PAGE_HEIGHT: Final = 842
MARGIN: Final = 56
FONT_SIZE: Final = 10
LEADING: Final = 14
WRAP_AT: Final = 92  # characters of 10 pt Helvetica that fit between the margins
PAGE_LINES: Final = (PAGE_HEIGHT - 2 * MARGIN - 30) // LEADING
_ASCII_FALLBACKS: Final = {"→": "->", "≤": "<=", "≥": ">="}


def _pdf_string(text: str) -> bytes:
    for char, fallback in _ASCII_FALLBACKS.items():
        text = text.replace(char, fallback)
    raw = text.encode("cp1252", errors="replace")
    return b"(" + raw.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)") + b")"


def _wrapped(lines: list[str]) -> list[str]:
    out: list[str] = []
    for line in lines:
        indent = line[: len(line) - len(line.lstrip(" "))]
        out.extend(textwrap.wrap(line, WRAP_AT, subsequent_indent=indent + "  ") or [""])
    return out


def _page_stream(title: str | None, lines: list[str]) -> bytes:
    top = PAGE_HEIGHT - MARGIN
    parts = [b"BT"]
    if title is not None:
        parts += [b"/F2 16 Tf", f"{MARGIN} {top} Td".encode(), _pdf_string(title) + b" Tj"]
        parts += [f"0 -{LEADING + 16} Td".encode()]
    else:
        parts += [f"{MARGIN} {top} Td".encode()]
    parts += [f"/F1 {FONT_SIZE} Tf {LEADING} TL".encode()]
    for line in lines:
        parts.append(_pdf_string(line) + b" Tj T*")
    parts.append(b"ET")
    return b"\n".join(parts)


def text_pdf(title: str, lines: list[str]) -> bytes:
    """A PDF of `lines` (wrapped to the page width) under `title`, as many A4 pages as they need."""
    wrapped = _wrapped(lines)
    chunks = [wrapped[i : i + PAGE_LINES] for i in range(0, len(wrapped), PAGE_LINES)] or [[]]
    # Objects: 1 catalog, 2 page tree, 3 Helvetica, 4 Helvetica-Bold, then a page and its content per page.
    page_ids = [5 + 2 * i for i in range(len(chunks))]
    objects: dict[int, bytes] = {
        1: b"<< /Type /Catalog /Pages 2 0 R >>",
        2: b"<< /Type /Pages /Kids ["
        + b" ".join(f"{p} 0 R".encode() for p in page_ids)
        + f"] /Count {len(chunks)} >>".encode(),
        3: b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
        4: b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica-Bold /Encoding /WinAnsiEncoding >>",
    }
    for number, (page_id, chunk) in enumerate(zip(page_ids, chunks, strict=True)):
        stream = _page_stream(title if number == 0 else None, chunk)
        objects[page_id] = (
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {PAGE_WIDTH} {PAGE_HEIGHT}] "
            f"/Resources << /Font << /F1 3 0 R /F2 4 0 R >> >> /Contents {page_id + 1} 0 R >>"
        ).encode()
        objects[page_id + 1] = f"<< /Length {len(stream)} >>\nstream\n".encode() + stream + b"\nendstream"
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets: dict[int, int] = {}
    for number in sorted(objects):
        offsets[number] = len(out)
        out += f"{number} 0 obj\n".encode() + objects[number] + b"\nendobj\n"
    xref_at = len(out)
    count = max(objects) + 1
    out += f"xref\n0 {count}\n0000000000 65535 f \n".encode()
    for number in range(1, count):
        out += f"{offsets[number]:010d} 00000 n \n".encode()
    out += f"trailer\n<< /Size {count} /Root 1 0 R >>\nstartxref\n{xref_at}\n%%EOF\n".encode()
    return bytes(out)
