"""What every benchmark records about the run: the machine, its load, the versions and the commit."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import onnxruntime as ort

REPO = Path(__file__).resolve().parent.parent


def git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True).stdout.strip()
    except OSError:
        return ""


def machine_info() -> dict[str, Any]:
    """The machine and the tree as the run starts (add ``load_avg_at_end`` when it ends)."""
    cpu = next(
        (
            ln.split(":", 1)[1].strip()
            for ln in Path("/proc/cpuinfo").read_text().splitlines()
            if "model name" in ln
        ),
        "?",
    )
    return {
        "nproc": os.cpu_count(),
        "cpu_model": cpu,
        "load_avg_at_start": list(os.getloadavg()),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "onnxruntime": ort.__version__,
        "faiss": faiss.__version__,
        "numpy": np.__version__,
        # Other work may be in progress in the tree; a server runs whatever src/ holds.
        "git_head": git("rev-parse", "--short", "HEAD"),
        "git_src_dirty": bool(git("status", "--porcelain", "--", "src")),
        "git_dirty": bool(git("status", "--porcelain")),
        # BLAS / OpenMP threads change the small matrix products (the reduction of a search's views) a lot
        # on a shared 2-core machine.
        "thread_env": {
            k: os.environ.get(k)
            for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "LOOKALIKE_EMBED_THREADS")
        },
    }
