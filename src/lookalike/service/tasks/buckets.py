"""The operator's buckets as tasks see them: a tenant's increment.meta and the pictures it names."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Final

from lookalike.config import Settings
from lookalike.domain import errors as e
from lookalike.domain.errors import LookalikeError
from lookalike.domain.models import Account

META_FILE: Final = "increment.meta"


def resolve_in_bucket(root: Path, relative: str, start: Path | None = None) -> Path:
    """`relative` inside the bucket root: from the root when it starts with "/" (or no `start` is
    given), else from `start`. Refuses `..`, NUL, and anything that resolves (through symlinks too)
    outside the root."""
    if "\x00" in relative or ".." in PurePosixPath(relative).parts:
        raise LookalikeError(e.INVALID_PARAMETER, f"The path {relative[:200]!r} leaves the bucket.")
    real_root = Path(os.path.realpath(root))
    origin = real_root if start is None or relative.startswith("/") else start
    real = Path(os.path.realpath(origin / relative.lstrip("/")))
    if not real.is_relative_to(real_root):
        raise LookalikeError(e.INVALID_PARAMETER, f"The path {relative[:200]!r} leaves the bucket.")
    return real


def meta_lines(meta: Path, *, after: int) -> Iterator[tuple[int, str]]:
    """The file's lines after line `after`, numbered from 1 (bytes that are not UTF-8 replaced)."""
    with meta.open("rb") as handle:
        for line_no, raw in enumerate(handle, 1):
            if line_no > after:
                yield line_no, raw.decode("utf-8", errors="replace")


def _no_meta_file(bucket_name: str, path: str) -> LookalikeError:
    return LookalikeError(
        e.INVALID_PARAMETER, f"No {META_FILE} file at {path[:200]!r} in bucket {bucket_name[:128]!r}."
    )


class Buckets:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    def root(self, account: Account, bucket_name: str, path: str) -> Path:
        """The bucket's directory, if `account` may use it. An unknown bucket and another tenant's bucket
        answer exactly like a bucket without the file, so no tenant can learn which buckets or files exist."""
        bucket = self._settings.buckets.get(bucket_name)
        if bucket is None or not bucket.allows(account.id, account.name):
            raise _no_meta_file(bucket_name, path)
        return bucket.root

    def meta_file(self, account: Account, bucket_name: str, path: str) -> Path:
        """The increment.meta a task reads: Path names the file (or its directory) inside the bucket."""
        if not path.startswith("/") or (path.endswith("/") and path != "/"):
            raise LookalikeError(e.INVALID_PARAMETER, "Path must start with '/' and must not end with '/'.")
        root = self.root(account, bucket_name, path)
        target = resolve_in_bucket(root, path)
        if target.is_dir():
            target = resolve_in_bucket(root, f"{path.rstrip('/')}/{META_FILE}")
        if not target.is_file():
            raise _no_meta_file(bucket_name, path)
        return target
