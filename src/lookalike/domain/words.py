"""Words of what a tenant wrote about a picture, and of a text query, for matching one against the other.

Search by words matches the query against each picture's ProductId, PicName and CustomContent with the
database's full-text index (SQLite FTS5, PostgreSQL tsvector). Both sides are reduced to the same words here,
so the two databases match alike and neither's own tokenizer decides:

* case folded, accents removed (NFKD), split on everything that is not a letter or a digit, so
  ``red-sneaker_front.JPG`` gives ``red sneaker front jpg``;
* every CJK ideograph, kana or hangul syllable is a word of its own (Chinese has no spaces);
* a light plural fold: a word of four or more letters ending in one ``s`` loses it (``sneakers``).

A query's *content words* leave out words that say nothing about a picture (``a``, ``photo of``, file
extensions, …). The share of them that a picture's words hold is the picture's word score (0-1).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from typing import Final

MAX_QUERY_WORDS: Final = 16
# Words that say nothing about which picture is meant.
STOPWORDS: Final = frozenset(
    {
        "a",
        "an",
        "the",
        "of",
        "and",
        "or",
        "in",
        "on",
        "at",
        "to",
        "for",
        "with",
        "by",
        "from",
        "this",
        "that",
        "these",
        "those",
        "is",
        "are",
        "be",
        "it",
        "its",
        "as",
        "into",
        "photo",
        "photos",
        "picture",
        "pictures",
        "image",
        "images",
        "pic",
        "pics",
        "img",
        "jpg",
        "jpeg",
        "png",
        "webp",
        "gif",
        "bmp",
        "tif",
        "tiff",
        "some",
        "any",
        "show",
        "shows",
        "showing",
        "me",
        "find",
        "my",
        "our",
        "your",
    }
)


def _is_cjk(ch: str) -> bool:
    cp = ord(ch)
    return (
        0x3040 <= cp <= 0x30FF  # kana
        or 0x3400 <= cp <= 0x4DBF
        or 0x4E00 <= cp <= 0x9FFF
        or 0xAC00 <= cp <= 0xD7AF  # hangul syllables
        or 0xF900 <= cp <= 0xFAFF
        or 0x20000 <= cp <= 0x2FA1F
    )


def _fold(word: str) -> str:
    if len(word) >= 4 and word.endswith("s") and not word.endswith("ss") and word.isascii():
        return word[:-1]
    return word


def words(text: str) -> list[str]:
    """The words of ``text``, in order, repeats kept (see the module docstring)."""
    # Decomposed before and after case folding: compatibility forms (𝓐) fold only once decomposed.
    decomposed = unicodedata.normalize("NFKD", unicodedata.normalize("NFKD", text).casefold())
    out: list[str] = []
    current: list[str] = []

    def flush() -> None:
        if current:
            out.append(_fold("".join(current)))
            current.clear()

    for ch in decomposed:
        if unicodedata.combining(ch):
            continue
        if not ch.isalnum():  # separators, and code points this Python's Unicode data does not assign
            flush()
        elif _is_cjk(ch):
            flush()
            out.append(ch)
        else:
            current.append(ch)
    flush()
    return out


def search_text(parts: Iterable[str]) -> str:
    """What the full-text index holds for a picture: the distinct words of its texts, space-separated."""
    seen: dict[str, None] = {}
    for part in parts:
        for word in words(part):
            seen.setdefault(word, None)
    return " ".join(seen)


def query_words(text: str) -> list[str]:
    """The distinct content words of a query, in order, at most ``MAX_QUERY_WORDS``."""
    seen: dict[str, None] = {}
    for word in words(text):
        if word not in STOPWORDS:
            seen.setdefault(word, None)
    return list(seen)[:MAX_QUERY_WORDS]


def coverage(query: list[str], stored: str) -> float:
    """The share of the query's content words that a picture's stored words hold (0 when none)."""
    if not query:
        return 0.0
    have = set(stored.split())
    return sum(1 for word in query if word in have) / len(query)
