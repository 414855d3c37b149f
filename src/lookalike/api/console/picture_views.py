"""What the pictures and search pages share: thumbnail links, attribute lists, the instance sub-navigation."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from starlette.datastructures import FormData, UploadFile

from lookalike.domain import errors as e
from lookalike.domain.errors import LookalikeError
from lookalike.domain.models import ImageRecord
from lookalike.domain.region import Box


def instance_path(name: str, *parts: str) -> str:
    return "/".join([f"/console/instances/{quote(name, safe='')}", *parts])


def thumbnail_url(name: str, record: ImageRecord) -> str:
    # The picture's update time versions the URL: an overwrite keeps the id but changes the thumbnail, and
    # the browser may then cache each version for long.
    version = int(record.updated_at.timestamp() * 1000)
    return instance_path(name, "thumbnails", f"{record.id}?v={version}")


def attribute_pairs(record: ImageRecord) -> list[tuple[str, str]]:
    """The attributes that were set (non-zero numbers, non-empty texts), in slot order."""
    return [
        (key, str(value))
        for key, value in record.attributes.as_filter_fields().items()
        if value not in (0, "")
    ]


def tile(name: str, record: ImageRecord, has_thumbnail: bool, score: float | None = None) -> dict[str, Any]:
    return {
        "record": record,
        "thumbnail": thumbnail_url(name, record) if has_thumbnail else None,
        "href": instance_path(name, "pictures", str(record.id)),
        "attributes": attribute_pairs(record),
        "score": score,
    }


def box_percentages(box: Box, width: int, height: int) -> dict[str, float]:
    """A pixel box as CSS percentages of the picture, for an overlay that scales with the image."""
    return {
        "left": round(100 * box.x1 / width, 3),
        "top": round(100 * box.y1 / height, 3),
        "width": round(100 * box.width / width, 3),
        "height": round(100 * box.height / height, 3),
    }


async def uploaded_file(form: FormData, key: str) -> bytes:
    """The bytes of a form's file field; a missing or empty file is the service's "no picture" refusal."""
    upload = form.get(key)
    data = await upload.read() if isinstance(upload, UploadFile) else b""
    if not data:
        raise LookalikeError(e.NO_SPECIFIED_PIC_CONTENT, "Choose a picture file.")
    return data
