"""Settings for one Lookalike process (the embedded default needs none of them set)."""

from __future__ import annotations

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
    admin_name: str = "admin"
    model_cache_dir: Path | None = None  # default: <data_dir>/models
    catalogue_path: Path | None = None  # default: the packaged catalogue (lookalike/data/catalogue.json)
    trial_seats: int = 100  # free-trial seats until the operator sets a number
    sweep_interval_s: float = 60.0

    @property
    def models_dir(self) -> Path:
        return self.model_cache_dir or self.data_dir / "models"

    @property
    def index_dir(self) -> Path:
        return self.data_dir / "index"
