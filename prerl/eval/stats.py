"""Statistics for comparing runs: per-problem scores and a paired hierarchical bootstrap.

An evaluation gives, per problem, how many of its K samples were correct. From those counts come
Avg@K (``c / K`` per problem) and the unbiased Pass@k of Chen et al. (2021). A method's result is
then a matrix ``[seeds, problems]`` of per-problem scores for each eval set, and the question a
table asks is how much of a difference between two such matrices is noise.

The bootstrap answers it by redrawing both sources of noise (Davison & Hinkley 1997, §3.8, two-stage
resampling): each replicate draws the seeds of every method with replacement (a seed is one run, so
a draw holds for all of the run's sets) and the problems of every set with replacement. Problems are
drawn **once per replicate for all methods** (paired by problem id: the same hard problems are hard
for everyone, and that shared difficulty cancels in a difference), seeds independently per method.
The interval is the percentile interval of the replicates.

What the intervals do and do not cover is measured in ``tests/integration/test_stats_coverage.py`` on simulated
experiments with a known difference, and stated in docs/sweeps.md#reading-a-table: with few seeds the seed-level spread
is underestimated (three seeds give only ten distinct resamples), so intervals are too narrow there.
Everything here is pure numpy and seeded: the same inputs give the same intervals on any machine up
to floating-point summation order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Optional

import numpy as np

# Replicates drawn per block: bounds memory at a block x problems matrix of counts.
_BLOCK = 256


def pass_at_k(correct, n: int, k: int) -> np.ndarray:
    """Unbiased pass@k per problem with ``correct[i]`` of ``n`` samples right:
    ``1 − C(n−c, k) / C(n, k)``, vectorised over problems."""
    c = np.asarray(correct, dtype=int)
    if not 1 <= k <= n:
        raise ValueError(f"pass@k needs 1 <= k <= n, got k={k}, n={n}")
    if c.size and (c.min() < 0 or c.max() > n):
        raise ValueError(f"correct counts must lie in [0, {n}], got {c.min()}..{c.max()}")
    # C(n−c, k)/C(n, k) = prod_{i=n−c+1}^{n} (1 − k/i): a running product from i = n down; it reaches
    # 0 at i = k, which is exactly when n − c < k and every draw of k contains a correct sample.
    factors = 1.0 - k / np.arange(n, 0, -1)
    tail = np.concatenate([[1.0], np.cumprod(factors)])  # tail[j] = prod over the top j values of i
    return 1.0 - np.maximum(tail[c], 0.0)


def problem_scores(correct, K: int, metric: str) -> np.ndarray:
    """Per-problem score from correct counts out of K: ``avg`` (Avg@K) or ``pass_at_<k>``."""
    if metric == "avg":
        return np.asarray(correct, dtype=float) / K
    if metric.startswith("pass_at_") and metric.removeprefix("pass_at_").isdigit():
        return pass_at_k(correct, K, int(metric.removeprefix("pass_at_")))
    raise ValueError(f"unknown per-problem metric {metric!r}: avg or pass_at_<k>")


@dataclass(frozen=True)
class Interval:
    """A point estimate and its bootstrap interval."""

    mean: float
    lo: float
    hi: float

    def excludes(self, value: float = 0.0) -> bool:
        return not self.lo <= value <= self.hi

    def scaled(self, factor: float) -> "Interval":
        """In other units, e.g. ``scaled(100)`` for percent."""
        return Interval(factor * self.mean, factor * self.lo, factor * self.hi)


def percentile_interval(point: float, replicates: np.ndarray, level: float) -> Interval:
    lo, hi = np.quantile(replicates, [(1 - level) / 2, (1 + level) / 2])
    return Interval(float(point), float(lo), float(hi))


def resample_counts(rng: np.random.Generator, n: int, size: int) -> np.ndarray:
    """How often each of ``n`` items is drawn in ``size`` resamples of ``n`` with replacement: [size, n]."""
    return rng.multinomial(n, np.full(n, 1.0 / n), size=size)


def bootstrap_means(
    rows: Mapping[str, Mapping[str, np.ndarray]], n_boot: int = 2000, seed: int = 0, paired: bool = True
) -> dict[str, dict[str, np.ndarray]]:
    """Replicates of each row's mean score per set: ``{row: {set: [n_boot]}}``.

    ``rows[row][set]`` is a ``[seeds, problems]`` matrix; all rows that have a set must list its
    problems in the same order (pair them by id first). ``paired=False`` draws problems
    independently per row, for comparison only."""
    for row, sets in rows.items():
        for name, x in sets.items():
            if np.ndim(x) != 2 or min(np.shape(x)) == 0:
                raise ValueError(
                    f"{row}/{name}: expected a non-empty [seeds, problems] matrix, got shape {np.shape(x)}"
                )
    widths: dict[str, int] = {}
    for sets in rows.values():
        for name, x in sets.items():
            if widths.setdefault(name, x.shape[1]) != x.shape[1]:
                raise ValueError(f"set {name}: rows hold {widths[name]} and {x.shape[1]} problems; pair them by id")
    rng = np.random.default_rng(seed)
    out = {row: {name: np.empty(n_boot) for name in sets} for row, sets in rows.items()}
    for start in range(0, n_boot, _BLOCK):
        size = min(_BLOCK, n_boot - start)
        shared = {name: resample_counts(rng, n, size) for name, n in widths.items()} if paired else None
        for row, sets in rows.items():
            seed_counts = resample_counts(rng, next(iter(sets.values())).shape[0], size)  # [size, seeds]
            for name, x in sets.items():
                problem_counts = shared[name] if shared is not None else resample_counts(rng, x.shape[1], size)
                per_seed = np.asarray(x, dtype=float) @ problem_counts.T  # [seeds, size]: sums over drawn problems
                out[row][name][start : start + size] = (seed_counts.T * per_seed).sum(0) / (x.shape[0] * x.shape[1])
    return out


@dataclass(frozen=True)
class RowSummary:
    """One row's estimate per column, and its difference from the baseline row (None for the baseline)."""

    estimate: dict[str, Interval]
    delta: Optional[dict[str, Interval]]
    n_seeds: int


def compare(
    rows: Mapping[str, Mapping[str, np.ndarray]],
    baseline: Optional[str] = None,
    average: Optional[str] = "average",
    level: float = 0.95,
    n_boot: int = 2000,
    seed: int = 0,
    paired: bool = True,
) -> dict[str, RowSummary]:
    """Each row's mean per set with its interval, and its difference from ``baseline`` with its interval.

    ``average`` names an extra column: the unweighted mean over the sets (every set counts alike,
    as the paper's Avg column), for rows that have all of them."""
    if baseline is not None and baseline not in rows:
        raise KeyError(f"baseline {baseline!r} is not one of the rows {list(rows)}")
    for row, sets in rows.items():
        seeds = {x.shape[0] for x in sets.values()}
        if len(seeds) > 1:
            raise ValueError(f"{row}: every set of a row must hold the same seeds, got {sorted(seeds)}")
    reps = bootstrap_means(rows, n_boot, seed, paired)
    points = {row: {name: float(np.mean(x)) for name, x in sets.items()} for row, sets in rows.items()}
    all_sets = sorted({name for sets in rows.values() for name in sets})
    if average is not None:
        for row in rows:
            if set(points[row]) == set(all_sets) and all_sets:
                points[row][average] = float(np.mean([points[row][s] for s in all_sets]))
                reps[row][average] = np.mean([reps[row][s] for s in all_sets], axis=0)
    summaries = {}
    for row, sets in rows.items():
        estimate = {c: percentile_interval(points[row][c], reps[row][c], level) for c in points[row]}
        delta = None
        if baseline is not None and row != baseline:
            shared = [c for c in points[row] if c in points[baseline]]
            delta = {
                c: percentile_interval(points[row][c] - points[baseline][c], reps[row][c] - reps[baseline][c], level)
                for c in shared
            }
        summaries[row] = RowSummary(estimate, delta, next(iter(sets.values())).shape[0] if sets else 0)
    return summaries


def seed_interval(values, level: float = 0.95, n_boot: int = 2000, seed: int = 0) -> Interval:
    """The mean of per-seed values and its bootstrap interval over seeds (for curves and step counts,
    where there are no per-problem scores)."""
    x = np.asarray(values, dtype=float)
    if x.ndim != 1 or x.size == 0:
        raise ValueError(f"expected a non-empty list of per-seed values, got shape {x.shape}")
    counts = resample_counts(np.random.default_rng(seed), x.size, n_boot)
    return percentile_interval(float(x.mean()), counts @ x / x.size, level)
