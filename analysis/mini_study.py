"""The mini study of every claim of the paper, written from the logged runs (``docs/mini-study.md``).

    make mini-study                    # runs sweeps/mini_study/*.yaml and the alignment, then this
    python -m analysis.mini_study --experiment mini-study --out docs/mini-study.md
    python -m analysis.mini_study --experiment mini-study-quick --dsrl-steps 10 --preset quick --out X.md

It reads the FINISHED runs tagged ``sweep=mini_study`` in one MLflow experiment (and the experiment's
``alignment <model>`` runs of ``analysis.alignment --mlflow``), names each run's cell from its config
(``cell_label``), and writes per part (a)-(h) the tables of ``analysis/tables.py`` (paired hierarchical
bootstrap, ``prerl/stats.py``) and figures, then ONE table of every claim (``CLAIMS``): the paper's
number, the mini result per task with its 95% interval, and a verdict by ``verdict``:

- reproduced: the interval excludes the claim's reference value (0 for a difference) on the paper's side;
- not reproduced: it excludes the reference on the other side;
- inconclusive at this power: the interval holds the reference.

The paper's own effect size is not part of the rule (its numbers are Qwen3-4B on six math benchmarks,
not the mini tasks); where the quantity is in the paper's units, a column says whether the paper's
number lies inside the interval.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Optional

import numpy as np
from mlflow.tracking import MlflowClient

from . import render
from .aggregate import Group, choose_step, eval_curve, group_runs, row_samples
from .alignment import PAPER as ALIGNMENT_PAPER
from .figures import SOLVED, TRAINING, pass_at_k, plot_pass_at_k, plot_series
from .runs import RunRecord, experiment_runs, load_runs
from .tables import TableOptions, TableSpec, accuracy_table
from prerl.config import TrackingConfig
from prerl.stats import Interval, _uniform_counts, bootstrap_means, compare, percentile_interval, seed_interval
from prerl.tracking import tracking_uri, with_retry

SWEEP = "mini_study"  # the tag of every part's runs (sweeps/mini_study/*.yaml)
ALIGNMENT_RUNS = "attributes.run_name LIKE 'alignment %' and attributes.status = 'FINISHED'"  # part (h)
REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE = "reproduced", "not reproduced", "inconclusive at this power"
NOT_TESTABLE = "not testable here"
TASKS = ("mini", "mini_styles", "micro")  # model.mini.name; micro only in the smoke preset
BEHAVIOUR_KEYS = ("transitions", "reflections", "backtracking", "verification", "subgoal_setting", "enumeration")
FOUR = BEHAVIOUR_KEYS[2:]
OWN = ("warmup_steps", "objective.name", "objective.advantage")  # what makes a cell a cell
WHOLE = {
    "psr_prerl": "PSR-PreRL",
    "nsr_prerl": "NSR-PreRL",
    "prerl": "PreRL",
    "nsr_rl": "NSR-RL",
    "psr_rl": "PSR-RL",
    "rl": "RL",
    "w_reinforce": "W-REINFORCE",
}
GRPO = "GRPO"
WINDOW = 3  # updates averaged for the solved counts and lengths at a phase's start or end


def verdict(interval: Optional[Interval], direction: int, reference: float = 0.0) -> str:
    """The stated rule: the interval against the claim's reference value, on the paper's side
    (``direction`` +1: the paper says the quantity exceeds ``reference``; -1: falls below it)."""
    if interval is None:
        return "no runs"
    above, below = interval.lo > reference, interval.hi < reference
    if (above and direction > 0) or (below and direction < 0):
        return REPRODUCED
    if above or below:
        return NOT_REPRODUCED
    return INCONCLUSIVE


def cell_label(params: dict[str, str]) -> str:
    """A run's cell: ``GRPO``; ``NSR-PreRL(20)→GRPO`` (DSRL), ``NSR-RL(20)→GRPO``,
    ``NSR-PreRL-unit(20)→GRPO``; ``PSR-PreRL alone`` (the objective for the whole run)."""
    warmup, total = int(params.get("warmup_steps", 0)), int(params.get("total_steps", 0))
    if warmup == 0:
        return GRPO if params.get("algorithm.name") == "grpo" else params.get("algorithm.name", "?")
    objective = params.get("objective.name", "?")
    unit = str(params.get("objective.advantage", "")).rsplit(".", 1)[-1] == "unit"  # logged as ObjectiveAdvantage.unit
    name = WHOLE.get(objective, objective) + ("-unit" if unit else "")
    return f"{name} alone" if warmup >= total else f"{name}({warmup})→{params.get('algorithm.name', '?').upper()}"


def task_of(run: RunRecord) -> str:
    """The run's task: its mini model's name, its model path, or a GGUF model's name (``SmolLM2-135M-Instruct``)."""
    given = {k: v for k, v in run.params.items() if v != "None"}  # MLflow holds a null as "None"
    gguf = given.get("model.gguf.model")
    return given.get("model.mini.name") or given.get("model.path") or (gguf.rsplit("/", 1)[-1] if gguf else "?")


@dataclass
class Study:
    """The study's runs grouped by task and cell, and what the claims need to know about its design."""

    runs: list[RunRecord]
    dsrl_steps: int
    total_steps: int
    opts: TableOptions
    alignment: dict[str, dict] = field(default_factory=dict)  # task -> {"json": ..., "tokens": {...}}
    _groups: dict[str, dict[str, Group]] = field(default_factory=dict, repr=False)

    @property
    def dsrl(self) -> str:
        return f"NSR-PreRL({self.dsrl_steps})→GRPO"

    def tasks(self) -> list[str]:
        found = {task_of(r) for r in self.runs} | set(self.alignment)
        return [t for t in TASKS if t in found] + sorted(found - set(TASKS))

    def task_runs(self, task: str, labels: Optional[list[str]] = None) -> list[RunRecord]:
        return [r for r in self.runs if task_of(r) == task and (labels is None or cell_label(r.params) in labels)]

    def groups(self, task: str) -> dict[str, Group]:
        if task not in self._groups:
            self._groups[task] = {g.label: g for g in group_runs(self.task_runs(task), cell_label)}
        return self._groups[task]


# --- quantities with intervals -----------------------------------------------------------------


def accuracy_contrast(
    study: Study, task: str, terms: list[tuple[str, object, float]], eval_set: str = "test", metric: str = "avg"
) -> Optional[Interval]:
    """Σ weight × accuracy (percent) of (cell, step) terms, ``step``: "final" or an eval step (0: the
    base model, which every run evaluates first). Problems are paired by id across terms; each term's
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


def window_mean(run: RunRecord, metric: str, first: int, last: int) -> Optional[float]:
    """Mean of a training metric over logged updates ``first..last`` (update d's rollout comes from the
    policy after d − 1 updates, so update 1's is the base model's)."""
    values = [v for s, v in run.history.get(metric, {}).items() if first <= s <= last]
    return float(np.mean(values)) if values else None


def per_run(study: Study, task: str, label: str, fn: Callable[[RunRecord], Optional[float]]) -> list[float]:
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
    """mean(a) − mean(b), seeds of each resampled independently (``prerl.stats.compare``, one 'problem')."""
    if not a or not b:
        return None
    if len(a) == 1 or len(b) == 1:
        return unbounded(float(np.mean(a) - np.mean(b)))
    rows = {"a": {"x": np.array(a)[:, None]}, "b": {"x": np.array(b)[:, None]}}
    return compare(rows, "b", None, opts.level, opts.n_boot, opts.seed)["a"].delta["x"]


def behaviour_at(category: str, step: int) -> Callable[[RunRecord], Optional[float]]:
    """Per run: mean count per response at update ``step`` (``four``: the four behaviours summed)."""

    def fn(run: RunRecord) -> Optional[float]:
        keys = [f"train/behaviour/{c}" for c in (FOUR if category == "four" else (category,))]
        values = [run.history.get(k, {}).get(step) for k in keys]
        return None if any(v is None for v in values) else float(sum(values))

    return fn


def behaviour_change(category: str, after: int) -> Callable[[RunRecord], Optional[float]]:
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


def change(metric: str, first: tuple[int, int], last: tuple[int, int]) -> Callable[[RunRecord], Optional[float]]:
    """Per run: the metric's mean over updates ``last`` minus over updates ``first``."""

    def fn(run: RunRecord) -> Optional[float]:
        a, b = window_mean(run, metric, *first), window_mean(run, metric, *last)
        return None if a is None or b is None else b - a

    return fn


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
    draws = _uniform_counts(np.random.default_rng(opts.seed), n, opts.n_boot).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        reps = draws @ sums[0] / (draws @ counts[0]) - draws @ sums[1] / (draws @ counts[1])
    return percentile_interval(point, reps[np.isfinite(reps)], opts.level)


def alignment_stat(key: str) -> Callable[[Study, str], Optional[Interval]]:
    """Mean of a per-response alignment statistic (``inner``, ``cosine``, ``negative``) over responses."""

    def measure(study: Study, task: str) -> Optional[Interval]:
        found = study.alignment.get(task)
        if not found:
            return None
        rows = found["json"]["responses"]
        values = np.array([float(r["inner"] < 0) if key == "negative" else r[key] for r in rows])
        return seed_interval(values, study.opts.level, study.opts.n_boot, study.opts.seed)  # over responses

    return measure


def alignment_tokens(split: str) -> Callable[[Study, str], Optional[Interval]]:
    def measure(study: Study, task: str) -> Optional[Interval]:
        found = study.alignment.get(task)
        return token_gap_contrast(found["tokens"], split, study.opts) if found else None

    return measure


# --- the claims --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Claim:
    """One claim of the paper (docs/paper.md#reported-results, and #gradient-alignment) reduced to a quantity whose
    sign (against ``reference``) the paper states. ``measure(study, task)`` gives its interval; a claim
    without one says why it is ``untestable`` here. ``paper_value``: the paper's number in the same
    units as the quantity, when it is (then the table says whether it lies inside the interval)."""

    id: str
    text: str
    paper: str
    quantity: str
    measure: Optional[Callable[[Study, str], Optional[Interval]]] = None
    direction: int = +1
    reference: float = 0.0
    paper_value: Optional[float] = None
    untestable: str = ""
    unit: str = "points"
    skipped: str = NOT_TESTABLE  # what the verdict column says for an unmeasured claim


def acc(*terms, eval_set="test"):
    """A claim measure from (cell, step, weight) terms; a cell may be a function of the study (DSRL's S)."""

    def measure(study: Study, task: str) -> Optional[Interval]:
        resolved = [
            (label(study) if callable(label) else label, step(study) if callable(step) else step, w)
            for label, step, w in terms
        ]
        return accuracy_contrast(study, task, resolved, eval_set)

    return measure


def DSRL(s):
    return s.dsrl


def NSR_RL(s):
    return f"NSR-RL({s.dsrl_steps})→GRPO"


def UNIT(s):
    return f"NSR-PreRL-unit({s.dsrl_steps})→GRPO"


def WARMUP(s):
    return s.dsrl_steps  # the eval step at the end of DSRL's warm-up


def SHORT(s):
    return (
        f"NSR-PreRL({max(x for x in warmups(s) if x < s.dsrl_steps)})→GRPO"
        if any(x < s.dsrl_steps for x in warmups(s))
        else "none"
    )


def LONG(s):
    return f"NSR-PreRL({max(warmups(s))})→GRPO" if warmups(s) and max(warmups(s)) > s.dsrl_steps else "none"


def warmups(study: Study) -> list[int]:
    """The NSR-PreRL warm-up lengths S (0 < S < T) the study ran."""
    return sorted({int(r.params["warmup_steps"]) for r in study.runs if cell_label(r.params).startswith("NSR-PreRL(")})


def seeds_measure(label, fn, minus_label=None, minus_fn=None):
    """A claim measure from per-run training quantities: a cell's mean, or its difference from another's."""

    def measure(study: Study, task: str) -> Optional[Interval]:
        name = label(study) if callable(label) else label
        a = per_run(study, task, name, fn(study))
        if minus_label is None:
            return seed_mean(a, study.opts)
        other = minus_label(study) if callable(minus_label) else minus_label
        return seed_difference(a, per_run(study, task, other, (minus_fn or fn)(study)), study.opts)

    return measure


def phase_window(study: Study) -> tuple[int, int]:
    return max(1, study.dsrl_steps - WINDOW + 1), study.dsrl_steps


def start_window(study: Study) -> tuple[int, int]:
    return 1, WINDOW


def end_window(study: Study) -> tuple[int, int]:
    return study.total_steps - WINDOW + 1, study.total_steps


CLAIMS: tuple[Claim, ...] = (
    Claim(
        "7.1-dsrl-beats-grpo",
        "DSRL beats GRPO at equal total updates (Avg)",
        "57.54 vs 55.79: +1.75 (Qwen3-4B), +1.47 (8B)",
        "Avg@K test, DSRL − GRPO, final update",
        acc((DSRL, "final", 1), (GRPO, "final", -1)),
        paper_value=1.75,
    ),
    Claim(
        "7.1-grpo-beats-base",
        "GRPO raises accuracy over the base model",
        "55.79 vs 41.26: +14.53",
        "Avg@K test, GRPO final − base (update 0)",
        acc((GRPO, "final", 1), (GRPO, 0, -1)),
        paper_value=14.53,
    ),
    Claim(
        "7.1-dsrl-beats-base",
        "DSRL raises accuracy over the base model",
        "57.54 vs 41.26: +16.28",
        "Avg@K test, DSRL final − base",
        acc((DSRL, "final", 1), (GRPO, 0, -1)),
        paper_value=16.28,
    ),
    Claim(
        "7.1-dsrl-pass-at-k",
        "DSRL's gain holds across Pass@k (paper reports Pass@K beside Avg@32)",
        "not reported per k",
        "Pass@K test (the largest k), DSRL − GRPO, final update",
        lambda s, t: dsrl_pass_at_largest_k(s, t),
    ),
    Claim(
        "7.1-other-baselines",
        "DSRL outperforms PPO, REINFORCE++ and RLOO",
        "rows not found",
        "",
        untestable="the study runs GRPO as its one baseline; PPO, REINFORCE++ and RLOO on the mini tasks are "
        "`make sweep-baselines` (~70 more runs, outside this study's budget)",
        skipped="not tested in this study",
    ),
    Claim(
        "7.2-nsr-rl-warmup-below-grpo",
        "An NSR-RL warm-up (post-train space) ends below GRPO",
        "54.38 vs 55.79: −1.41",
        "Avg@K test, NSR-RL(S)→GRPO − GRPO",
        acc((NSR_RL, "final", 1), (GRPO, "final", -1)),
        direction=-1,
        paper_value=-1.41,
    ),
    Claim(
        "7.2-prerl-warmup-beats-rl-warmup",
        "An NSR-PreRL warm-up beats an NSR-RL warm-up",
        "57.54 vs 54.38: +3.16",
        "Avg@K test, DSRL − NSR-RL(S)→GRPO",
        acc((DSRL, "final", 1), (NSR_RL, "final", -1)),
        paper_value=3.16,
    ),
    Claim(
        "7.2-short-warmup-insufficient",
        "Too short a warm-up stimulates too little (best S in [10, 25])",
        "per-S numbers not reported",
        "Avg@K test, DSRL's S − the next shorter S tried",
        acc((DSRL, "final", 1), (SHORT, "final", -1)),
    ),
    Claim(
        "7.2-long-warmup-hurts",
        "Too long a warm-up hurts later training (over-exploration)",
        "per-S numbers not reported",
        "Avg@K test, the longest S tried − DSRL's S",
        acc((LONG, "final", 1), (DSRL, "final", -1)),
        direction=-1,
    ),
    Claim(
        "7.3-dsrl-fewer-steps",
        "DSRL reaches an accuracy in fewer updates than GRPO",
        "2.5x fewer to 45%, 1.6x to 58%",
        "updates to reach the midpoint between base and GRPO's final Avg@K, GRPO − DSRL (never: T + eval interval)",
        lambda s, t: steps_to_midpoint(s, t),
        unit="updates",
    ),
    Claim(
        "7.3-nsr-prerl-20-vs-rl-60",
        "NSR-PreRL alone reaches in S updates what RL reaches in 3S (AMC23, 20 vs 60+)",
        "20 vs 60+ steps",
        "Avg@K test, NSR-PreRL alone at update S − GRPO at update min(3S, T)",
        lambda s, t: accuracy_contrast(
            s, t, [("NSR-PreRL alone", s.dsrl_steps, 1), (GRPO, min(3 * s.dsrl_steps, s.total_steps), -1)]
        ),
    ),
    Claim(
        "7.4-dsrl-ood",
        "DSRL generalises better out of distribution",
        "GPQA-Diamond +3.79, MMLU-Pro +5.37 (4B)",
        "Avg@K on the mini OOD set (three operands), DSRL − GRPO",
        acc((DSRL, "final", 1), (GRPO, "final", -1), eval_set="ood"),
    ),
    Claim(
        "7.4-ood-benchmarks",
        "OOD gains on GPQA-Diamond, MMLU-Pro, HumanEval, BBH",
        "+3.79, +5.37, +2.44 (8B)",
        "",
        untestable="the mini tasks are addition; there is no multiple-choice or code set at this scale "
        "(7.4-dsrl-ood is the mini analogue)",
    ),
    Claim(
        "7.5-psr-prerl-degrades",
        "PSR-PreRL (positives, pre-train space) degrades",
        "collapse (Figure 3a)",
        "Avg@K test, PSR-PreRL alone final − base",
        acc(("PSR-PreRL alone", "final", 1), (GRPO, 0, -1)),
        direction=-1,
    ),
    Claim(
        "7.5-nsr-prerl-effective",
        "NSR-PreRL alone is effective",
        '"exceptionally effective"',
        "Avg@K test, NSR-PreRL alone final − base",
        acc(("NSR-PreRL alone", "final", 1), (GRPO, 0, -1)),
    ),
    Claim(
        "7.5-nsr-beats-psr",
        "NSR-PreRL beats PSR-PreRL",
        "qualitative",
        "Avg@K test, NSR-PreRL alone − PSR-PreRL alone",
        acc(("NSR-PreRL alone", "final", 1), ("PSR-PreRL alone", "final", -1)),
    ),
    Claim(
        "7.5-prerl-tracks-rl",
        "PreRL (all samples) improves as RL does for its first ~150 steps",
        "tracks RL to ~150 steps",
        "Avg@K test, PreRL alone final − base (T < 150)",
        acc(("PreRL alone", "final", 1), (GRPO, 0, -1)),
    ),
    Claim(
        "7.5-prerl-collapses-late",
        "PreRL then collapses after ~150 steps",
        "collapse after ~150 steps",
        "",
        untestable="runs are T updates long (60 in the full study): the collapse the paper places after 150 "
        "steps lies outside every run",
    ),
    Claim(
        "7.5-nsr-lengthens",
        "NSR-PreRL makes responses longer",
        "length grows (no number)",
        "training response length (tokens), NSR-PreRL alone: last 3 updates − first 3",
        seeds_measure("NSR-PreRL alone", lambda s: change("train/response_length", start_window(s), end_window(s))),
        unit="tokens",
    ),
    Claim(
        "7.6-transitions-after-warmup",
        "After the NSR-PreRL warm-up, transition thoughts rise vs the base model",
        "x14.89 after 20 steps",
        "transitions per response, DSRL at update S+1 − update 1",
        seeds_measure(DSRL, lambda s: behaviour_change("transitions", s.dsrl_steps + 1)),
        unit="per response",
    ),
    Claim(
        "7.6-reflections-after-warmup",
        "After the NSR-PreRL warm-up, reflection thoughts rise vs the base model",
        "x6.54 after 20 steps",
        "reflections per response, DSRL at update S+1 − update 1",
        seeds_measure(DSRL, lambda s: behaviour_change("reflections", s.dsrl_steps + 1)),
        unit="per response",
    ),
    Claim(
        "7.6-grpo-elicits-less",
        "GRPO over the same updates elicits transitions far more weakly",
        "weaker (no number)",
        "transitions per response, change by update S+1: DSRL − GRPO",
        seeds_measure(DSRL, lambda s: behaviour_change("transitions", s.dsrl_steps + 1), GRPO),
        unit="per response",
    ),
    Claim(
        "7.6-four-behaviours-rise",
        "The four behaviours rise during the NSR-PreRL phase",
        "rise (no number)",
        "backtracking + verification + subgoal + enumeration per response, DSRL update S+1 − update 1",
        seeds_measure(DSRL, lambda s: behaviour_change("four", s.dsrl_steps + 1)),
        unit="per response",
    ),
    Claim(
        "7.6-four-behaviours-ceiling",
        "The four behaviours end higher under DSRL than under GRPO",
        "higher ceiling",
        "the four behaviours per response at the last update, DSRL − GRPO",
        seeds_measure(DSRL, lambda s: behaviour_at("four", s.total_steps), GRPO),
        unit="per response",
    ),
    Claim(
        "7.6-fully-solved-rise",
        "Fully solved prompts rise sharply during the NSR-PreRL phase",
        "rises sharply",
        "fully solved prompts per update, DSRL: last 3 warm-up updates − first 3",
        seeds_measure(DSRL, lambda s: change("train/prompts/fully_solved", start_window(s), phase_window(s))),
        unit="prompts",
    ),
    Claim(
        "2.3-inner-positive",
        "⟨∇log P(y), ∇log P(y|x)⟩ is positive (base model)",
        "mean +9.23 (min +0.94)",
        "mean inner product per response",
        alignment_stat("inner"),
        unit="inner product",
    ),
    Claim(
        "2.3-no-negative",
        "No response has a negative inner product",
        "0% of 400",
        "share of responses with a negative inner product",
        alignment_stat("negative"),
        direction=-1,
        reference=0.05,
        unit="share",
    ),
    Claim(
        "2.3-cosine-positive",
        "The two gradients point the same way",
        "mean cosine 0.44",
        "mean cosine per response",
        alignment_stat("cosine"),
        paper_value=0.44,
        unit="cosine",
    ),
    Claim(
        "2.3-early-tokens-diverge",
        "log P(y_t|·) and log P(y_t|x,·) diverge most on early tokens",
        "Figure 2c",
        "mean |gap| of the first 8 tokens − the rest",
        alignment_tokens("early"),
        unit="nats",
    ),
    Claim(
        "2.3-high-entropy-diverge",
        "They diverge most on high-entropy tokens",
        "Figure 2c",
        "mean |gap|, tokens above − below the median entropy",
        alignment_tokens("entropy"),
        unit="nats",
    ),
    Claim(
        "scale-qwen3-8b",
        "The same holds on Qwen3-8B",
        "DSRL 58.47 vs GRPO 57.00",
        "",
        untestable="one model size per task (0.83M parameters); nothing here scales the model",
    ),
)


def dsrl_pass_at_largest_k(study: Study, task: str) -> Optional[Interval]:
    runs = study.task_runs(task, [study.dsrl, GRPO])
    ks = sorted({int(k.rsplit("_", 1)[1]) for r in runs for k in r.history if k.startswith("eval/test/pass_at_")})
    if not ks:
        return None
    return accuracy_contrast(study, task, [(study.dsrl, "final", 1), (GRPO, "final", -1)], "test", f"pass_at_{ks[-1]}")


def steps_to_midpoint(study: Study, task: str) -> Optional[Interval]:
    """GRPO's mean updates to first reach the midpoint accuracy minus DSRL's (a run that never does
    counts as T + the eval interval)."""
    groups = study.groups(task)
    if GRPO not in groups or study.dsrl not in groups:
        return None
    curves = {label: [eval_curve(r, ["test"], "avg") for r in groups[label].runs] for label in (GRPO, study.dsrl)}
    base = np.mean([c[0]["test"] for c in curves[GRPO] if 0 in c])
    final = np.mean([c[max(c)]["test"] for c in curves[GRPO] if c])
    target = (base + final) / 2
    never = study.total_steps + int(groups[GRPO].runs[0].params.get("eval.every_steps", 10) or 10)
    reach = {
        label: [next((s for s in sorted(c) if c[s]["test"] >= target), never) for c in cs]
        for label, cs in curves.items()
    }
    return seed_difference([float(x) for x in reach[GRPO]], [float(x) for x in reach[study.dsrl]], study.opts)


# --- the document ------------------------------------------------------------------------------


def cell(text: str) -> str:
    """Text for a Markdown table cell (a ``|`` would end the cell)."""
    return str(text).replace("|", "\\|")


def fmt(interval: Optional[Interval], digits: int = 2) -> str:
    if interval is None:
        return "-"
    return f"{interval.mean:+.{digits}f} [{interval.lo:+.{digits}f}, {interval.hi:+.{digits}f}]"


def claim_rows(study: Study, claims: Optional[tuple[Claim, ...]] = None) -> list[dict]:
    """Per claim (default ``CLAIMS``) and task: the interval, the verdict, and whether the paper's number
    lies inside."""
    rows = []
    for claim in CLAIMS if claims is None else claims:
        row = {"claim": claim, "tasks": {}}
        for task in study.tasks():
            if claim.measure is None:
                row["tasks"][task] = (None, f"{claim.skipped}: {claim.untestable}", "")
                continue
            interval = claim.measure(study, task)
            inside = (
                ""
                if claim.paper_value is None or interval is None
                else "yes"
                if interval.lo <= claim.paper_value <= interval.hi
                else "no"
            )
            row["tasks"][task] = (interval, verdict(interval, claim.direction, claim.reference), inside)
        rows.append(row)
    return rows


def claims_table(study: Study, rows: list[dict]) -> str:
    tasks = study.tasks()
    head = (
        ["id", "claim", "paper", "measured here"]
        + [f"{t}: result [95%]" for t in tasks]
        + [f"{t}: verdict" for t in tasks]
        + ["paper's number inside?"]
    )
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        c = row["claim"]
        if c.measure is None:
            lines.append(
                f"| {c.id} | {cell(c.text)} | {cell(c.paper)} | - | "
                + " | ".join("-" for _ in tasks)
                + " | "
                + " | ".join(f"{c.skipped}: {c.untestable}" if i == 0 else c.skipped for i, _ in enumerate(tasks))
                + " | - |"
            )
            continue
        ref = f" (vs {c.reference:g})" if c.reference else ""
        values = [fmt(row["tasks"][t][0]) + (f" {c.unit}" if row["tasks"][t][0] else "") for t in tasks]
        verdicts = [
            f"**{row['tasks'][t][1]}**" if row["tasks"][t][1] in (REPRODUCED, NOT_REPRODUCED) else row["tasks"][t][1]
            for t in tasks
        ]
        inside = ", ".join(f"{t}: {row['tasks'][t][2]}" for t in tasks if row["tasks"][t][2]) or "n/a"
        lines.append(
            f"| {c.id} | {cell(c.text)} | {cell(c.paper)} | {cell(c.quantity)}{ref} | "
            + " | ".join(values)
            + " | "
            + " | ".join(verdicts)
            + f" | {inside} |"
        )
    return "\n".join(lines)


def headline(study: Study, rows: list[dict]) -> str:
    """Counts of verdicts per task, e.g. ``mini: 3 reproduced, 5 not reproduced, 12 inconclusive``."""
    parts = []
    for task in study.tasks():
        verdicts = [row["tasks"][task][1] for row in rows if row["claim"].measure is not None]
        counts = {v: verdicts.count(v) for v in (REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE, "no runs")}
        parts.append(f"{task}: " + ", ".join(f"{n} {v}" for v, n in counts.items() if n))
    skipped = [row["claim"].skipped for row in rows if row["claim"].measure is None]
    return "; ".join(parts) + "".join(f"; {skipped.count(s)} {s}" for s in dict.fromkeys(skipped))


@dataclass(frozen=True)
class Part:
    key: str
    title: str
    sweep: str  # sweeps/mini_study/<sweep>.yaml, "" when the part reads other parts' runs
    cells: Callable[[Study], list[str]]
    baseline: Callable[[Study], str] = lambda s: GRPO


PARTS = (
    Part("a", "DSRL vs GRPO at equal total updates", "a_dsrl_vs_grpo", lambda s: [GRPO, s.dsrl]),
    Part(
        "b",
        "Warm-up length S (NSR-PreRL for S updates, then GRPO)",
        "b_warmup",
        lambda s: [GRPO] + [f"NSR-PreRL({w})→GRPO" for w in warmups(s)],
    ),
    Part("c", "Warm-up space: NSR-PreRL vs NSR-RL, then GRPO", "c_warmup_kind", lambda s: [GRPO, NSR_RL(s), s.dsrl]),
    Part(
        "d",
        "PSR-PreRL, NSR-PreRL and PreRL (all samples), each for the whole run",
        "d_objectives",
        lambda s: [GRPO, "PSR-PreRL alone", "NSR-PreRL alone", "PreRL alone"],
    ),
    Part(
        "e",
        "NSR weighting in the warm-up: group-relative r − mean vs unit −1",
        "e_nsr_weighting",
        lambda s: [s.dsrl, UNIT(s)],
        baseline=lambda s: s.dsrl,
    ),
)


def REPORTED(s):
    return [GRPO, s.dsrl, NSR_RL(s), "PSR-PreRL alone", "NSR-PreRL alone", "PreRL alone"]


def part_table(study: Study, task: str, part: Part, ood: bool = False) -> Optional[str]:
    cells = part.cells(study)
    runs = study.task_runs(task, cells)
    if not runs:
        return None
    spec = TableSpec(
        f"{part.key}_{task}",
        f"({part.key}) {task}: {part.title}" + (" — OOD set" if ood else ""),
        (SWEEP,),
        "cell",
        cell_label,
        lambda p: (cells.index(cell_label(p)),),
        ood=ood,
        own=OWN,
    )
    baseline = part.baseline(study)
    opts = replace(study.opts, baseline=baseline if baseline in {cell_label(r.params) for r in runs} else None)
    return render.markdown(accuracy_table(spec, runs, opts)).replace("### ", "#### ", 1)


def pass_at_k_table(study: Study, task: str, eval_set: str = "test") -> Optional[str]:
    groups = study.groups(task)
    if GRPO not in groups or study.dsrl not in groups:
        return None
    curves = {label: pass_at_k(groups[label], eval_set, study.opts) for label in (GRPO, study.dsrl)}
    ks = sorted(set(curves[GRPO]) & set(curves[study.dsrl]))
    lines = [f"| k | {GRPO} | {study.dsrl} | Δ (DSRL − GRPO) | verdict |", "|---|---|---|---|---|"]
    for k in ks:
        d = accuracy_contrast(study, task, [(study.dsrl, "final", 1), (GRPO, "final", -1)], eval_set, f"pass_at_{k}")

        def text(i):
            return f"{i.mean:.1f} [{i.lo:.1f}, {i.hi:.1f}]"

        lines.append(
            f"| {k} | {text(curves[GRPO][k])} | {text(curves[study.dsrl][k])} | {fmt(d, 1)} | {verdict(d, +1)} |"
        )
    return "\n".join(lines) if ks else None


def behaviour_table(study: Study, task: str, categories: tuple[str, ...] = BEHAVIOUR_KEYS) -> Optional[str]:
    """Per reported cell and behaviour category: the base count per response, and the ratios to it after
    S updates and at the end."""
    cells = [c for c in REPORTED(study) if c in study.groups(task)]
    if not cells:
        return None
    after, end = study.dsrl_steps + 1, study.total_steps
    head = ["cell"] + [f"{c}: base, ×after S, ×end" for c in categories]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for label in cells:
        out = [label]
        for c in categories:
            base = per_run(study, task, label, behaviour_at(c, 1))
            ratios = [behaviour_ratio(study, task, label, c, s) for s in (after, end)]
            out.append(
                f"{np.mean(base):.3f}, " + ", ".join("-" if r is None or math.isnan(r) else f"×{r:.2f}" for r in ratios)
                if base
                else "-"
            )
        lines.append("| " + " | ".join(out) + " |")
    return "\n".join(lines)


def dynamics_table(study: Study, task: str) -> Optional[str]:
    cells = [c for c in REPORTED(study) if c in study.groups(task)]
    if not cells:
        return None
    windows = {
        "first 3": start_window(study),
        f"updates {phase_window(study)[0]}–{study.dsrl_steps}": phase_window(study),
        "last 3": end_window(study),
    }
    head = ["cell"] + [f"{name}, {w}" for name in SOLVED.values() for w in windows]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for label in cells:
        out = [label]
        for metric in SOLVED:
            for first, last in windows.values():
                values = per_run(study, task, label, lambda r, m=metric, a=first, b=last: window_mean(r, m, a, b))
                i = seed_mean(values, study.opts)
                out.append("-" if i is None else f"{i.mean:.1f} [{i.lo:.1f}, {i.hi:.1f}]")
        lines.append("| " + " | ".join(out) + " |")
    return "\n".join(lines)


def alignment_table(study: Study) -> Optional[str]:
    tasks = [t for t in study.tasks() if t in study.alignment]
    if not tasks:
        return None
    rows = [
        ("mean inner product", alignment_stat("inner"), "inner_mean"),
        ("mean cosine", alignment_stat("cosine"), "cosine_mean"),
        ("share negative", alignment_stat("negative"), "negative_frac"),
        ("|gap| first 8 tokens − rest", alignment_tokens("early"), None),
        ("|gap| high − low entropy", alignment_tokens("entropy"), None),
    ]
    lines = [
        "| statistic | " + " | ".join(f"{t} [95%]" for t in tasks) + " | paper (Qwen3-4B, AMC23) |",
        "|---|" + "---|" * (len(tasks) + 1),
    ]
    for name, measure, key in rows:
        lines.append(
            f"| {cell(name)} | "
            + " | ".join(fmt(measure(study, t), 3) for t in tasks)
            + " | "
            + (f"{ALIGNMENT_PAPER[key]:g}" if key else "Figure 2c: higher")
            + " |"
        )
    for key in ("inner_min", "inner_max", "abs_gap_mean", "responses", "accuracy"):
        lines.append(
            f"| {key} | "
            + " | ".join(f"{study.alignment[t]['json']['summary'].get(key, math.nan):.4g}" for t in tasks)
            + f" | {ALIGNMENT_PAPER.get(key, '')} |"
        )
    return "\n".join(lines)


def wall_time(client: MlflowClient, experiment: str) -> dict[str, float]:
    """Seconds: the runs' summed durations (end − start), their summed logged training seconds, and the
    span from the first start to the last end."""
    runs = experiment_runs(client, experiment, f"tags.sweep = '{SWEEP}' and attributes.status = 'FINISHED'")
    runs += experiment_runs(client, experiment, ALIGNMENT_RUNS)
    spans = [(r.info.start_time, r.info.end_time) for r in runs if r.info.end_time]
    return {
        "runs": float(len(runs)),
        "summed": sum(e - s for s, e in spans) / 1000,
        "train": sum(r.data.metrics.get("cost/train_seconds_total", 0.0) for r in runs),
        "span": (max(e for _, e in spans) - min(s for s, _ in spans)) / 1000 if spans else 0.0,
    }


def hours(seconds: float) -> str:
    return f"{seconds / 3600:.2f} h ({seconds:,.0f} s)"


def seeds_per_cell(study: Study, task: str) -> str:
    counts = {label: len(g.runs) for label, g in study.groups(task).items()}
    return ", ".join(f"{label} {n}" for label, n in sorted(counts.items()))


def figures(study: Study, task: str, folder: Path) -> list[tuple[str, Path]]:
    groups = study.groups(task)

    def pick(labels):
        return [groups[label] for label in labels if label in groups]

    out = []
    if pick([GRPO, study.dsrl]):
        out.append(
            (
                "(a) Pass@k",
                plot_pass_at_k(
                    pick([GRPO, study.dsrl]), ["test", "ood"], study.opts, folder / f"a_{task}_pass_at_k.png"
                ),
            )
        )
    for part in PARTS[1:4]:
        if pick(part.cells(study)):
            out.append(
                (
                    f"({part.key}) training",
                    plot_series(pick(part.cells(study)), TRAINING, folder / f"{part.key}_{task}_training.png"),
                )
            )
    if pick(REPORTED(study)):
        out.append(("(g) solved dynamics", plot_series(pick(REPORTED(study)), SOLVED, folder / f"g_{task}_solved.png")))
    return out


def batch(study: Study) -> str:
    p = study.runs[0].params
    return f"{p.get('prompts_per_step', '?')} prompts × {p.get('rollout.samples_per_prompt', '?')} samples"


def has_ood(study: Study) -> bool:
    return any(k.startswith("eval/ood/") for r in study.runs for k in r.history)


def document(study: Study, experiment: str, command: str, preset: str, times: dict, folder: Path, doc: Path) -> str:
    rows = claim_rows(study)
    tasks = study.tasks()
    label = {
        "": "the full study",
        "quick": "the QUICK preset (a preview: 2 seeds, fewer updates; not the study)",
        "smoke": "the SMOKE preset (micro model, 4 updates: a check of the pipeline, NOT a result)",
    }.get(preset, preset)
    out = [
        "# The mini study: every claim of the paper on the mini tasks",
        "",
        f"Generated by `analysis/mini_study.py` from MLflow experiment `{experiment}`: {label}. "
        f"Regenerate with `{command}`.",
        "",
        f"- Runs: {len(study.runs)} finished training runs (tag `sweep={SWEEP}`) on {', '.join(tasks)}; "
        f"{int(times['runs']) - len(study.runs)} alignment runs. T = {study.total_steps} updates, "
        f"DSRL's warm-up S = {study.dsrl_steps}.",
        *[f"- Seeds per cell, {t}: {seeds_per_cell(study, t)}" for t in tasks],
        f"- Wall time: the runs' durations sum to {hours(times['summed'])} (logged training seconds "
        f"{hours(times['train'])}); first start to last end {hours(times['span'])}.",
        f"- Budget: every method runs one shared setting — the defaults of `conf/` (lr "
        f"{study.runs[0].params.get('optim.lr', '?')}, {batch(study)} per update, GRPO's clip, the objective's "
        "own `loss_coef`); no method is tuned.",
        "- Verdict rule (per claim and task, on the 95% interval of the quantity in 'measured here'): "
        "**reproduced** if the interval excludes the reference value (0 unless stated) on the paper's side; "
        "**not reproduced** if it excludes it on the other side; **inconclusive at this power** if it holds "
        "it. The paper's effect size is not part of the rule (Qwen3-4B on math benchmarks is another scale); "
        "the last column says whether the paper's number, where it is in the same units, lies inside.",
        "- Intervals: accuracies by the paired hierarchical bootstrap of `prerl/stats.py` (seeds and "
        "problems, problems paired by id); training quantities (behaviours, lengths, solved counts) over "
        "seeds; alignment over responses. The claims table and the part tables draw their bootstrap "
        "replicates separately (a claim's cells alone, a part's rows together), so the same difference can "
        "show bounds a few tenths of a point apart in the two: with 5 seeds the seed resampling has few "
        "distinct outcomes and the percentile bounds move in steps. Fewer than 10 seeds make intervals too "
        "narrow (docs/sweeps.md, 'Reading a table').",
        "",
        f"**Headline:** {headline(study, rows)}.",
        "",
        "## Every claim",
        "",
        claims_table(study, rows),
        "",
    ]
    for part in PARTS:
        out += [f"## ({part.key}) {part.title}", "", f"Runs: `python train.py -m +sweep/mini_study={part.sweep}`.", ""]
        for task in tasks:
            for ood in (False, True) if part.key == "a" and has_ood(study) else (False,):
                table = part_table(study, task, part, ood)
                out += [table, ""] if table else [f"{task}: no runs.", ""]
            if part.key == "a" and (table := pass_at_k_table(study, task)):
                out += [f"#### (a) {task}: Pass@k on the test set, every k", "", table, ""]
    out += [
        "## (f) Behaviour ratios against the base model",
        "",
        f"Counted by the rule lists of `prerl/behaviours.py` on the training rollouts ({batch(study)} "
        f"per update, logged as `train/behaviour/*`): base = update 1's rollouts (the base model's), "
        f"'after S' = update {study.dsrl_steps + 1}'s (the policy after S = {study.dsrl_steps} updates), "
        f"'end' = update {study.total_steps}'s. Ratios are of the means over the cell's seeds. The paper: "
        "transitions ×14.89, reflections ×6.54 after 20 NSR-PreRL steps (keyword lists unknown; the four "
        'behaviours by an LLM judge, here by rules). The mini corpora write only two markers: "wait, check '
        '..." (a repaired slip) and "check ... ok" (a re-checked column), so transitions and backtracking '
        "count the same thoughts, as do reflections and verification (they part only on degenerate text), "
        "and subgoal setting and enumeration never occur.",
        "",
    ]
    for task in tasks:
        out += [f"#### (f) {task}", "", behaviour_table(study, task) or "no runs", ""]
    out += [
        "## (g) Fully solved, fully unsolved and solved-at-least-once prompts",
        "",
        f"Prompts of the training batch ({batch(study)}) "
        "with all, none or at least one sample right, mean over updates in a window, 95% interval over seeds.",
        "",
    ]
    for task in tasks:
        out += [f"#### (g) {task}", "", dynamics_table(study, task) or "no runs", ""]
    out += [
        "## (h) Gradient alignment of the base model",
        "",
        "`python -m analysis.alignment --model <task> --mlflow --experiment " + experiment + "`: per response "
        "⟨∇log P(y|c), ∇log P(y|x)⟩ over all parameters (sums over tokens), c = `<|im_start|>`; per token the gap "
        "log P(y_t|x,·) − log P(y_t|c,·). Intervals over responses.",
        "",
        alignment_table(study) or "no alignment runs in the experiment",
        "",
    ]
    for task in tasks:
        if task in study.alignment and study.alignment[task].get("png"):
            out += [f"![alignment, {task}]({folder.name}/{study.alignment[task]['png'].name})", ""]
    out += ["## Figures", ""]
    for task in tasks:
        for title, path in figures(study, task, folder):
            out += [f"![{title}, {task}]({os.path.relpath(path, doc.parent)})", ""]
    out += [
        "## See also",
        "",
        "- `docs/nsr-prerl-investigation.md`: why NSR-PreRL alone collapses on `mini` "
        "(the pre-train space cannot tell a correctly copied digit from a wrong one), and what it does on "
        "`mini_styles`, with diagnostics per token class.",
        "",
    ]
    return "\n".join(out)


def plan() -> str:
    """The document before any run: what the study measures per claim and how to run it (no results)."""
    lines = ["| id | claim | paper | measured here (paper's side of the reference) | status |", "|---|---|---|---|---|"]
    for c in CLAIMS:
        side = f"{'>' if c.direction > 0 else '<'} {c.reference:g}"
        status = f"{c.skipped}: {c.untestable}" if c.measure is None else "not run yet"
        quantity = f"{cell(c.quantity)} ({side})" if c.quantity else "-"
        lines.append(f"| {c.id} | {cell(c.text)} | {cell(c.paper)} | {quantity} | {status} |")
    return "\n".join(lines)


# --- reading the store -------------------------------------------------------------------------


def load_alignment(client: MlflowClient, experiment: str, folder: Path) -> dict[str, dict]:
    """task -> the newest FINISHED ``alignment <model>`` run's alignment.json, tokens and plot."""
    runs = experiment_runs(client, experiment, ALIGNMENT_RUNS, order_by=["attributes.start_time ASC"])
    found = {}
    for run in runs:
        task = run.data.params.get("model", "?")
        with tempfile.TemporaryDirectory() as tmp:
            local = Path(with_retry(client.download_artifacts, run.info.run_id, "alignment", tmp))
            tokens = np.load(io.BytesIO((local / "tokens.npz").read_bytes()))
            png = folder / f"h_{task}_alignment.png"
            if (local / "alignment.png").exists():
                folder.mkdir(parents=True, exist_ok=True)
                png.write_bytes((local / "alignment.png").read_bytes())
            found[task] = {
                "json": json.loads((local / "alignment.json").read_text()),
                "tokens": {k: tokens[k] for k in tokens.files},
                "png": png if png.exists() else None,
            }
    return found


def infer_dsrl_steps(runs: list[RunRecord]) -> Optional[int]:
    """DSRL's S: the warm-up length of the NSR-RL control (part c), which runs at DSRL's S."""
    found = {int(r.params["warmup_steps"]) for r in runs if cell_label(r.params).startswith("NSR-RL(")}
    return found.pop() if len(found) == 1 else None


def main(argv: list[str] | None = None) -> Path:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--experiment", default="mini-study", help="the MLflow experiment of the study's runs")
    p.add_argument("--uri", help="tracking URI (default: $MLFLOW_TRACKING_URI or ./mlflow.db)")
    p.add_argument("--out", default="docs/mini-study.md", help="the document; figures go to a folder beside it")
    p.add_argument("--dsrl-steps", type=int, help="DSRL's warm-up S (default: the NSR-RL control's S)")
    p.add_argument("--preset", default="", help="quick or smoke: labels the document as a preview")
    p.add_argument("--n-boot", type=int, default=2000)
    p.add_argument("--plan", action="store_true", help="print the claims and what is measured for each; no runs read")
    args = p.parse_args(argv)
    if args.plan:
        print(plan())
        return Path(args.out)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    start = time.perf_counter()
    client = MlflowClient(tracking_uri(TrackingConfig(uri=args.uri)))
    runs = load_runs(client, args.experiment, (SWEEP,))
    if not runs:
        raise SystemExit(
            f"no finished runs tagged sweep={SWEEP} in experiment {args.experiment!r}: run "
            "`make mini-study` (or PRESET=quick) first"
        )
    dsrl = args.dsrl_steps or infer_dsrl_steps(runs)
    if dsrl is None:
        raise SystemExit(
            "cannot tell DSRL's warm-up length from the runs (no single NSR-RL control): pass --dsrl-steps"
        )
    totals = {int(r.params.get("total_steps", 0)) for r in runs}
    if len(totals) != 1:
        raise SystemExit(f"the study's runs have different total_steps {sorted(totals)}: one experiment per preset")
    doc = Path(args.out)
    folder = doc.with_suffix("")
    folder.mkdir(parents=True, exist_ok=True)
    study = Study(
        runs, dsrl, totals.pop(), TableOptions(n_boot=args.n_boot), load_alignment(client, args.experiment, folder)
    )
    command = f"python -m analysis.mini_study --experiment {args.experiment} --dsrl-steps {dsrl} --out {args.out}" + (
        f" --preset {args.preset}" if args.preset else ""
    )
    text = document(study, args.experiment, command, args.preset, wall_time(client, args.experiment), folder, doc)
    doc.write_text(text)
    print(text)
    print(f"wrote {doc} and {folder}/ in {time.perf_counter() - start:.1f} s")
    return doc


if __name__ == "__main__":
    main()
