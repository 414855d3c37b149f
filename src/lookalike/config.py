"""Settings for one Lookalike process (the embedded default needs none of them set)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from lookalike.vision.decode import ImageLimits


@dataclass(frozen=True)
class Settings:
    data_dir: Path = Path("./data")
    database_url: str | None = None  # default: SQLite file in data_dir
    sqlite_synchronous: str = "NORMAL"
    image_limits: ImageLimits = field(default_factory=ImageLimits)
    index_exact_below: int = (
        10_000  # measured: at 10k exact search costs what HNSW does (bench/index_bench.py)
    )
    index_save_interval_s: float = 30.0
    embed_max_batch: int = 16
    embed_max_wait_ms: float = 3.0
    embed_threads: int | None = None
    # Advance uploads (AuthorizeFileUpload + OSS PostObject; api/alibaba/upload.py). The "host:port" clients
    # reach the HTTPS upload listener at; the SDK posts to https://{Bucket}.{Endpoint}/, so it is split at its
    # first dot into Bucket and Endpoint. None: uploads disabled (plain base64 PicContent still works).
    upload_public_host: str | None = None
    upload_ttl_s: float = 2 * 3600.0  # upload window after AuthorizeFileUpload, then object lifetime
    upload_max_pending: int = 1000  # live upload grants per account
    upload_cert: Path | None = None  # PEM certificate + key of the upload listener;
    upload_key: Path | None = None  # default: self-signed, generated once into <data_dir>/upload-tls/
    admin_name: str = "admin"
    model_cache_dir: Path | None = None  # default: <data_dir>/models
    catalogue_path: Path | None = None  # default: the packaged catalogue (lookalike/data/catalogue.json)
    trial_seats: int = 100  # free-trial seats until the operator sets a number
    sweep_interval_s: float = 60.0
    # Export/batch tasks. Each default reads its environment variable, so `lookalike serve` picks them up.
    # Base of the signed download links (MetaUrl, ErrorUrl): what clients reach this server at.
    public_base_url: str = field(
        default_factory=lambda: os.environ.get("LOOKALIKE_PUBLIC_URL", "http://127.0.0.1:8000")
    )
    # IncreaseInstance "buckets": name -> local directory. LOOKALIKE_BUCKETS="name=/path,other=/path2".
    buckets: Mapping[str, Path] = field(
        default_factory=lambda: parse_buckets(os.environ.get("LOOKALIKE_BUCKETS", ""))
    )
    # Hosts a task's CallbackAddress may name (exact host names). LOOKALIKE_CALLBACK_HOSTS="a.example,b".
    callback_hosts: frozenset[str] = field(
        default_factory=lambda: parse_hosts(os.environ.get("LOOKALIKE_CALLBACK_HOSTS", ""))
    )
    callback_timeout_s: float = 5.0
    # Shared state for several replicas: rate limits, signature nonces and the sweep lock live in this Redis
    # (redis://host:port/db; needs the [scale] extra). None: in memory per process and the SQL job_leases.
    redis_url: str | None = field(default_factory=lambda: os.environ.get("LOOKALIKE_REDIS_URL") or None)
    # Prefix of every key Lookalike writes, so several deployments (or test runs) can share one Redis.
    redis_prefix: str = field(default_factory=lambda: os.environ.get("LOOKALIKE_REDIS_PREFIX", "lookalike:"))

    @property
    def models_dir(self) -> Path:
        return self.model_cache_dir or self.data_dir / "models"

    @property
    def index_dir(self) -> Path:
        return self.data_dir / "index"


def parse_buckets(text: str) -> dict[str, Path]:
    """Parse "name=/path,other=/path2" into {name: Path}; a malformed entry is an error, never dropped."""
    buckets: dict[str, Path] = {}
    for entry in text.split(","):
        if not entry.strip():
            continue
        name, sep, path = entry.partition("=")
        if not sep or not name.strip() or not path.strip():
            raise ValueError(f"bucket mapping {entry!r} is not name=/path")
        buckets[name.strip()] = Path(path.strip())
    return buckets


def parse_hosts(text: str) -> frozenset[str]:
    return frozenset(h.strip().lower() for h in text.split(",") if h.strip())
