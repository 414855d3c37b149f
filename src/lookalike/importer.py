"""Bulk import through the native API, resumable.

Items come from a directory (ProductId = the first folder under the root, or the file stem for files
at the root; PicName = the path below the product folder) or a JSON-lines manifest
(`{"path": ..., "product_id": ..., "pic_name": ..., "category_id": ..., "int_attr": ..., ...}`).
A journal of finished keys makes a re-run skip what was done; since adds are upserts on
(ProductId, PicName), an item whose acknowledgement was lost in a crash is simply written again,
never duplicated.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from lookalike.domain.attributes import SLOTS

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm", ".pbm"}
# The manifest fields an item carries to its add, under the native API's names.
ATTRIBUTE_FIELDS = ("category_id", *(slot.name for slot in SLOTS), "custom_content", "region", "crop")
MAX_ATTEMPTS = 8


@dataclass(frozen=True)
class ImportItem:
    path: Path
    product_id: str
    pic_name: str
    fields: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return json.dumps([self.product_id, self.pic_name], ensure_ascii=False)


def items_from_directory(root: Path) -> Iterator[ImportItem]:
    for path in sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES):
        relative = path.relative_to(root)
        if len(relative.parts) == 1:
            yield ImportItem(path, path.stem, path.name)
        else:
            yield ImportItem(path, relative.parts[0], "/".join(relative.parts[1:]))


class ManifestError(ValueError):
    """A manifest line that is not a JSON object with a "path" (the message names the file and line)."""


def items_from_manifest(manifest: Path) -> Iterator[ImportItem]:
    with manifest.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
                path = Path(entry["path"])
                if not path.is_absolute():
                    path = manifest.parent / path
                fields = {k: entry[k] for k in ATTRIBUTE_FIELDS if k in entry}
                yield ImportItem(
                    path,
                    str(entry.get("product_id") or path.stem),
                    str(entry.get("pic_name") or path.name),
                    fields,
                )
            except (KeyError, TypeError, json.JSONDecodeError) as exc:
                raise ManifestError(f"{manifest}:{number}: bad manifest line ({exc})") from exc


class Journal:
    """Append-only record of finished keys; fsync'd per line so a crash loses at most the line in flight."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.done: set[str] = set()
        if path.exists():
            for line in path.read_text(encoding="utf-8").splitlines():
                if line.strip():
                    try:
                        self.done.add(json.dumps(json.loads(line), ensure_ascii=False))
                    except json.JSONDecodeError:
                        continue  # a torn last line from a crash
        self._handle = path.open("a", encoding="utf-8")
        self._lock = threading.Lock()

    def record(self, item: ImportItem) -> None:
        with self._lock:
            self._handle.write(item.key + "\n")
            self._handle.flush()
            os.fsync(self._handle.fileno())  # what the docstring promises: the line survives a crash
            self.done.add(item.key)

    def record_many(self, keys: list[str]) -> None:
        """Record a written batch's keys (ImportItem.key) with one fsync."""
        with self._lock:
            self._handle.write("".join(key + "\n" for key in keys))
            self._handle.flush()
            os.fsync(self._handle.fileno())
            self.done.update(keys)

    def close(self) -> None:
        self._handle.close()


def _send(client: httpx.Client, instance: str, item: ImportItem) -> str | None:
    """Add one picture, honouring Retry-After on 429; returns an error text or None."""
    data = {"product_id": item.product_id, "pic_name": item.pic_name}
    data.update({k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in item.fields.items()})
    try:
        content = item.path.read_bytes()
    except OSError as exc:
        return f"cannot read {item.path}: {exc}"
    error = "no attempt made"
    for attempt in range(MAX_ATTEMPTS):
        try:
            response = client.post(
                f"/v1/instances/{instance}/images", data=data, files={"picture": (item.path.name, content)}
            )
        except httpx.TransportError as exc:
            time.sleep(min(2**attempt * 0.2, 5))
            error = f"transport error: {exc}"
            continue
        if response.status_code == 200:
            return None
        if response.status_code == 429 or response.status_code >= 500:
            time.sleep(
                float(response.headers.get("retry-after", "1")) if response.status_code == 429 else 1.0
            )
            error = f"HTTP {response.status_code}"
            continue
        try:
            body = response.json()
            return f"{body.get('code')}: {body.get('message')}"
        except ValueError:
            return f"HTTP {response.status_code}"
    return error


def run_import(
    *,
    source: Path,
    instance: str,
    url: str,
    key_id: str,
    secret: str,
    state_dir: Path,
    workers: int = 4,
    progress: bool = True,
    client: httpx.Client | None = None,
) -> dict[str, Any]:
    items = list(items_from_manifest(source) if source.is_file() else items_from_directory(source))
    fingerprint = hashlib.sha256(f"{source.resolve()}|{instance}|{url}".encode()).hexdigest()[:16]
    journal = Journal(state_dir / f"{instance}-{fingerprint}.jsonl")
    pending = [i for i in items if i.key not in journal.done]
    failures: list[dict[str, str]] = []
    http = client or httpx.Client(base_url=url, auth=(key_id, secret), timeout=60)
    bar: Any = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(items), initial=len(items) - len(pending), unit="img", desc=f"import {instance}")
    lock = threading.Lock()

    def work(item: ImportItem) -> None:
        error = _send(http, instance, item)
        with lock:
            if error is None:
                journal.record(item)
            else:
                failures.append({"product_id": item.product_id, "pic_name": item.pic_name, "error": error})
            if bar is not None:
                bar.update(1)

    try:
        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            list(pool.map(work, pending))
    finally:
        journal.close()
        if bar is not None:
            bar.close()
        if client is None:
            http.close()
    return {
        "total": len(items),
        "skipped": len(items) - len(pending),
        "added": len(pending) - len(failures),
        "failed": len(failures),
        "failures": failures[:100],
        "journal": str(journal.path),
    }
