"""Which search an instance gets, and the index parameters that follow its size (pure, no I/O).

* fewer than ``exact_below`` live pictures, or no trained index yet -> exact scan (at 10k a scan of
  256-d float16 rows costs about what an ANN probe does, and it is exact);
* a filter matching at most ``exact_filtered_max`` pictures -> exact scan of those rows only (bounded
  cost: gathering and scoring 100k rows is ~30 ms on one core), whatever the instance size;
* otherwise IVF: ``nlist`` ~ sqrt(n) lists, ``nprobe`` widened as the filter narrows, and a shortlist
  re-ranked exactly from the float16 copies.

The constants come from bench/code_choice.py and bench/capacity_bench.py (bench/README.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum


class Mode(Enum):
    EXACT = "exact"
    ANN = "ann"


@dataclass(frozen=True)
class IndexPolicy:
    exact_below: int = 10_000
    exact_filtered_max: int = 100_000
    retrain_growth: float = 8.0  # retrain when the instance grew this many times past its training size
    compact_dead_fraction: float = 0.25  # rewrite the files when this share of slots is deleted
    nlist_per_sqrt: float = 1.0  # nlist ~ this x sqrt(n), rounded to a power of two
    # Chosen by bench/capacity_bench.py's sweep at 1M and 5M (bench/README.md): nlist/32 lists and 500
    # re-ranked gave recall@10 0.966 / 0.964 where nlist/64 and 100 gave 0.72 / 0.70.
    nprobe_fraction: float = 1 / 32  # lists probed without a filter (at least min_nprobe)
    min_nprobe: int = 32
    shortlist_factor: int = 20  # candidates re-ranked per wanted hit
    min_shortlist: int = 500

    def __post_init__(self) -> None:
        if self.exact_below < 1 or self.exact_filtered_max < 0 or self.retrain_growth <= 1:
            raise ValueError("exact_below >= 1, exact_filtered_max >= 0 and retrain_growth > 1")


@dataclass(frozen=True)
class Plan:
    mode: Mode
    nprobe: int = 0
    shortlist: int = 0


def nlist_for(n: int, policy: IndexPolicy) -> int:
    """Coarse lists for an instance of n pictures: a power of two near c*sqrt(n), 16..65536."""
    target = max(16.0, policy.nlist_per_sqrt * math.sqrt(max(n, 1)))
    return int(min(65536, 2 ** round(math.log2(target))))


def train_sample_size(nlist: int, n: int) -> int:
    """Points to train on: faiss wants >= 39 per centroid; more than 64 buys little."""
    return int(min(n, 64 * nlist))


def nprobe_for(nlist: int, selectivity: float, policy: IndexPolicy) -> int:
    """Lists probed: a fixed share of nlist, widened (up to 8x) as a filter keeps fewer pictures."""
    base = max(policy.min_nprobe, math.ceil(nlist * policy.nprobe_fraction))
    widen = min(8.0, max(1.0, math.sqrt(0.2 / max(selectivity, 1e-9))))
    return int(min(nlist, math.ceil(base * widen)))


def shortlist_for(k: int, policy: IndexPolicy) -> int:
    return max(policy.min_shortlist, policy.shortlist_factor * k)


def plan_search(
    live: int, allowed: int | None, k: int, *, trained_nlist: int | None, policy: IndexPolicy
) -> Plan:
    """The search to run for ``k`` hits among ``live`` pictures, ``allowed`` of them passing the filter
    (None: no filter). ``trained_nlist``: the lists of the trained index, None while there is none."""
    if trained_nlist is None or live < policy.exact_below:
        return Plan(Mode.EXACT)
    if allowed is not None and allowed <= policy.exact_filtered_max:
        return Plan(Mode.EXACT)
    selectivity = 1.0 if allowed is None else allowed / max(live, 1)
    return Plan(Mode.ANN, nprobe_for(trained_nlist, selectivity, policy), shortlist_for(k, policy))


def needs_training(live: int, trained_n: int | None, policy: IndexPolicy) -> bool:
    """First training once exact search stops being cheap; retraining when the instance outgrew it."""
    if trained_n is None:
        return live >= policy.exact_below
    return live > policy.retrain_growth * max(trained_n, 1)


def needs_compaction(slots: int, dead: int, policy: IndexPolicy) -> bool:
    return slots > 0 and dead > policy.compact_dead_fraction * slots
