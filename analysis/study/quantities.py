"""The quantities the claims are made of, with their 95% intervals: accuracy contrasts between cells
(the paired hierarchical bootstrap of ``prerl/eval/stats.py``), per-run training quantities over seeds, and
the base model's gradient alignment over responses.

A function of one run returns a number or None (the run lacks the metric); the per-run values of a
cell are then summarised over seeds (``seed_mean``, ``seed_difference``).
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Callable, Optional

import numpy as np

from prerl.eval.stats import Interval, bootstrap_means, compare, percentile_interval, resample_counts, seed_interval

from ..aggregate import Group, choose_step, eval_curve, row_samples
from ..runs import RunRecord
from ..tables import TableOptions
from .cells import Study

BEHAVIOUR_KEYS = ("transitions", "reflections", "backtracking", "verification", "subgoal_setting", "enumeration")
FOUR = BEHAVIOUR_KEYS[2:]  # the paper's four behaviours (backtracking, verification, subgoals, enumeration)
WINDOW = 3  # updates averaged for the solved counts and lengths at a phase's start or end
FINAL = "final"  # the step of a term: a run's last evaluation

RunValue = Callable[[RunRecord], Optional[float]]


# --- accuracy ----------------------------------------------------------------------------------


def accuracy_contrast(
    study: Study, task: str, terms: list[tuple[str, object, float]], eval_set: str = "test", metric: str = "avg"
) -> Optional[Interval]:
    """Σ weight × accuracy (percent) of (cell, step, weight) terms, ``step``: ``FINAL`` or an eval step (0:
    the base model, which every run evaluates first). Problems are paired by id across terms; each term's
    seeds are resampled on their own (two terms of one cell are treated as independent: conservative)."""
    groups = study.groups(task)
    if any(label not in groups for label, _, _ in terms):
        return None
    steps, pseudo = {}, []
    for i, (label, step, _) in enumerate(terms):
        copies = [replace(r) for r in groups[label].runs]
        steps |= {id(r): step for r in copies}
        pseudo.append(Group(f"{i}:{label}@{step}", copies))
    samples = row_samples(
        pseudo, [eval_set], metric, lambda run: choose_step(eval_curve(run, [eval_set], metric), steps[id(run)])
    )
    if len(samples.matrices) != len(terms) or any(eval_set not in m for m in samples.matrices.values()):
        return None
    reps = bootstrap_means(samples.matrices, study.opts.n_boot, study.opts.seed)
    weights = [w for _, _, w in terms]
    point = sum(w * float(np.mean(samples.matrices[g.label][eval_set])) for g, w in zip(pseudo, weights))
    draws = sum(w * reps[g.label][eval_set] for g, w in zip(pseudo, weights))
    return percentile_interval(point, draws, study.opts.level).scaled(100)


# --- training quantities over seeds ------------------------------------------------------------


def window_mean(run: RunRecord, metric: str, first: int, last: int) -> Optional[float]:
    """Mean of a training metric over logged updates ``first..last`` (update d's rollout comes from the
    policy after d − 1 updates, so update 1's is the base model's)."""
    values = [v for s, v in run.history.get(metric, {}).items() if first <= s <= last]
    return float(np.mean(values)) if values else None


def per_run(study: Study, task: str, label: str, fn: RunValue) -> list[float]:
    """``fn`` of each run of the cell, the runs without a finite value left out."""
    group = study.groups(task).get(label)
    values = [fn(r) for r in group.runs] if group else []
    return [v for v in values if v is not None and math.isfinite(v)]


def unbounded(mean: float) -> Interval:
    """One seed has no spread to resample: its bootstrap interval would be the point itself and the
    verdict rule would read certainty into it, so the interval is left unbounded (inconclusive)."""
    return Interval(mean, -math.inf, math.inf)


def seed_mean(values: list[float], opts: TableOptions) -> Optional[Interval]:
    if len(values) == 1:
        return unbounded(values[0])
    return seed_interval(values, opts.level, opts.n_boot, opts.seed) if values else None


def seed_difference(a: list[float], b: list[float], opts: TableOptions) -> Optional[Interval]:
    """mean(a) − mean(b), seeds of each resampled independently (``prerl.eval.stats.compare``, one 'problem')."""
    if not a or not b:
        return None
    if len(a) == 1 or len(b) == 1:
        return unbounded(float(np.mean(a) - np.mean(b)))
    rows = {"a": {"x": np.array(a)[:, None]}, "b": {"x": np.array(b)[:, None]}}
    return compare(rows, "b", None, opts.level, opts.n_boot, opts.seed)["a"].delta["x"]


def cell_mean(study: Study, task: str, label: str, fn: RunValue) -> Optional[Interval]:
    """A cell's mean of a per-run quantity, over seeds."""
    return seed_mean(per_run(study, task, label, fn), study.opts)


def cell_difference(study: Study, task: str, label: str, other: str, fn: RunValue) -> Optional[Interval]:
    """One cell's mean of a per-run quantity minus another's, over seeds."""
    return seed_difference(per_run(study, task, label, fn), per_run(study, task, other, fn), study.opts)


def behaviour_at(category: str, step: int) -> RunValue:
    """Per run: mean count per response at update ``step`` (``four``: the four behaviours summed)."""

    def fn(run: RunRecord) -> Optional[float]:
        keys = [f"train/behaviour/{c}" for c in (FOUR if category == "four" else (category,))]
        values = [run.history.get(k, {}).get(step) for k in keys]
        return None if any(v is None for v in values) else float(sum(values))

    return fn


def behaviour_change(category: str, after: int) -> RunValue:
    """Per run: mean count per response at update ``after`` minus at update 1 (the base model's rollouts)."""

    def fn(run: RunRecord) -> Optional[float]:
        a, b = behaviour_at(category, 1)(run), behaviour_at(category, after)(run)
        return None if a is None or b is None else b - a

    return fn


def behaviour_ratio(study: Study, task: str, label: str, category: str, after: int) -> Optional[float]:
    """Mean over the cell's runs at update ``after`` / mean at update 1 (what the paper's x14.89 is)."""
    at, base = (per_run(study, task, label, behaviour_at(category, s)) for s in (after, 1))
    if not at or not base:
        return None
    return float(np.mean(at) / np.mean(base)) if np.mean(base) > 0 else (math.inf if np.mean(at) > 0 else math.nan)


def change(metric: str, first: tuple[int, int], last: tuple[int, int]) -> RunValue:
    """Per run: the metric's mean over updates ``last`` minus over updates ``first``."""

    def fn(run: RunRecord) -> Optional[float]:
        a, b = window_mean(run, metric, *first), window_mean(run, metric, *last)
        return None if a is None or b is None else b - a

    return fn


def start_window(study: Study) -> tuple[int, int]:
    return 1, WINDOW


def warmup_end_window(study: Study) -> tuple[int, int]:
    """The last updates of DSRL's warm-up."""
    return max(1, study.dsrl_steps - WINDOW + 1), study.dsrl_steps


def end_window(study: Study) -> tuple[int, int]:
    return study.total_steps - WINDOW + 1, study.total_steps


# --- the base model's gradient alignment ------------------------------------------------------


def alignment_mean(study: Study, task: str, key: str) -> Optional[Interval]:
    """Mean of a per-response alignment statistic (``inner``, ``cosine``, or ``negative``: the share with
    a negative inner product) over the task's responses."""
    found = study.alignment.get(task)
    if not found:
        return None
    rows = found["json"]["responses"]
    values = np.array([float(r["inner"] < 0) if key == "negative" else r[key] for r in rows])
    return seed_interval(values, study.opts.level, study.opts.n_boot, study.opts.seed)  # over responses


def token_gap_contrast(tokens: dict[str, np.ndarray], split: str, opts: TableOptions) -> Optional[Interval]:
    """Mean |gap| of one token class minus the other's (``early``: the first 8 positions vs the rest;
    ``entropy``: above vs at or below the median entropy), responses resampled with replacement."""
    position, gap = np.asarray(tokens["position"]), np.abs(np.asarray(tokens["gap"]))
    if not len(gap):
        return None
    inside = position < 8 if split == "early" else np.asarray(tokens["entropy"]) > np.median(tokens["entropy"])
    response = np.cumsum(position == 0) - 1  # a response starts where its positions restart
    n = int(response.max()) + 1
    sums = [np.bincount(response, weights=gap * m, minlength=n) for m in (inside, ~inside)]
    counts = [np.bincount(response, weights=m.astype(float), minlength=n) for m in (inside, ~inside)]
    if min(c.sum() for c in counts) == 0:
        return None
    point = sums[0].sum() / counts[0].sum() - sums[1].sum() / counts[1].sum()
    draws = resample_counts(np.random.default_rng(opts.seed), n, opts.n_boot).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        reps = draws @ sums[0] / (draws @ counts[0]) - draws @ sums[1] / (draws @ counts[1])
    return percentile_interval(point, reps[np.isfinite(reps)], opts.level)


def alignment_token_contrast(study: Study, task: str, split: str) -> Optional[Interval]:
    found = study.alignment.get(task)
    return token_gap_contrast(found["tokens"], split, study.opts) if found else None
