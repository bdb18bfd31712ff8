"""Pure aggregation of run records: group by config, pick the step, gather per-problem scores.

Runs are averaged only when their configs agree on every key except the seed (and keys that do
not change what a run computes): a table row whose runs differ elsewhere is split, and its label
names the differing keys, so different configs are never averaged by accident. ``row_samples``
turns each row into the ``[seeds, problems]`` matrices that ``prerl.eval.stats`` compares.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Callable, Optional, Union

import numpy as np

from prerl.eval.stats import problem_scores
from prerl.tracking.completed import NOT_IDENTITY

from .runs import RunRecord

# Not part of "which config": the seed (what we average over), where the run ran, its tags.
NOT_COMPARED = NOT_IDENTITY + ("seed", "rollout.vllm.seed", "tracking.")

Step = Union[str, int]  # "final", "best" or a step number


def config_of(run: RunRecord) -> dict[str, str]:
    return {k: v for k, v in run.params.items() if not k.startswith(NOT_COMPARED)}


def differing_keys(runs: list[RunRecord]) -> list[str]:
    """Config keys (seed aside) whose values are not the same in all ``runs``."""
    configs = [config_of(r) for r in runs]
    keys = set().union(*configs) if configs else set()
    return sorted(k for k in keys if len({c.get(k) for c in configs}) > 1)


def one_per_seed(runs: list[RunRecord]) -> list[RunRecord]:
    """The newest run of each seed (a config run twice, e.g. by two sweeps, counts once)."""
    newest: dict[str, RunRecord] = {}
    for run in sorted(runs, key=lambda r: r.start_time):
        newest[run.seed] = run
    return sorted(newest.values(), key=lambda r: r.seed)


@dataclass
class Group:
    """The runs of one table row: same config, different seeds."""

    label: str
    runs: list[RunRecord]
    split_by: dict[str, str] = field(default_factory=dict)  # keys that split a label into several rows


def group_runs(runs: list[RunRecord], label: Callable[[dict[str, str]], str]) -> list[Group]:
    """Rows by ``label(params)``; a label whose runs differ in other config keys becomes one row per
    combination of those keys, named ``label [key=value, ...]``."""
    by_label: dict[str, list[RunRecord]] = defaultdict(list)
    for run in runs:
        by_label[label(run.params)].append(run)
    groups = []
    for name, members in by_label.items():
        split = differing_keys(members)
        buckets: dict[tuple, list[RunRecord]] = defaultdict(list)
        for run in members:
            buckets[tuple((k, config_of(run).get(k, "(unset)")) for k in split)].append(run)
        for combo, bucket in sorted(buckets.items()):
            suffix = f" [{', '.join(f'{k}={v}' for k, v in combo)}]" if combo else ""
            groups.append(Group(name + suffix, one_per_seed(bucket), dict(combo)))
    return groups


def metric_key(run: RunRecord, eval_set: str, metric: str) -> Optional[str]:
    """``eval/<set>/<metric>``; ``metric="avg"`` means the run's Avg@K, whatever its K."""
    if metric != "avg":
        key = f"eval/{eval_set}/{metric}"
        return key if key in run.history else None
    pattern = re.compile(rf"eval/{re.escape(eval_set)}/avg_at_\d+$")
    return next((k for k in sorted(run.history) if pattern.match(k)), None)


def eval_curve(run: RunRecord, sets: list[str], metric: str) -> dict[int, dict[str, float]]:
    """Per eval step where every one of ``sets`` was logged: the value of each set there."""
    keys = {s: metric_key(run, s, metric) for s in sets}
    if not sets or any(k is None for k in keys.values()):
        return {}
    steps = set.intersection(*(set(run.history[k]) for k in keys.values()))
    return {step: {s: run.history[k][step] for s, k in keys.items()} for step in sorted(steps)}


def mean(values: list[float]) -> float:
    return sum(values) / len(values)


def choose_step(curve: dict[int, dict[str, float]], step: Step) -> Optional[int]:
    """``final``: the last eval step; ``best``: the step with the highest mean over the curve's sets
    (give it the curve of the selection split, never of a reported set: ``StepRule``); or a number."""
    if not curve:
        return None
    if step == "final":
        return max(curve)
    if step == "best":
        return max(curve, key=lambda s: (mean(list(curve[s].values())), -s))
    return int(step) if int(step) in curve else None


def first_step_reaching(curve: dict[int, dict[str, float]], threshold: float) -> Optional[int]:
    """The first eval step whose mean over the sets is at least ``threshold`` (None: never)."""
    return next((s for s in sorted(curve) if mean(list(curve[s].values())) >= threshold), None)


@dataclass(frozen=True)
class StepRule:
    """Which eval step of a run a table reports: ``final`` (default), a step number, or ``best`` — the
    step with the best ``metric`` on the split ``best_on``, which the table then does not report
    (choosing the step on the reported set would inflate it)."""

    step: Step = "final"
    best_on: Optional[str] = None
    metric: str = "avg"

    def __post_init__(self):
        if self.step == "best" and not self.best_on:
            raise ValueError(
                "--step best needs --best-on SPLIT: the eval set the step is chosen on; the "
                "table then leaves that set out (choosing on a reported set inflates it)"
            )

    def pick(self, run: RunRecord, sets: list[str]) -> Optional[int]:
        """The step of ``run`` to report ``sets`` at (None: the run has no such eval)."""
        if self.step == "best":
            step = choose_step(eval_curve(run, [self.best_on], self.metric), "best")
            return step if step in eval_curve(run, sets, self.metric) else None
        return choose_step(eval_curve(run, sets, self.metric), self.step)

    def reported(self, sets: list[str]) -> list[str]:
        return [s for s in sets if s != self.best_on]

    def describe(self) -> str:
        if self.step == "best":
            return f"the step with the best {self.metric} on {self.best_on} (not reported), per run"
        return "the final eval step of each run" if self.step == "final" else f"step {self.step}"


@dataclass(frozen=True)
class Cell:
    """A row's value in one column: the point estimate over ``n`` runs (``of``: runs in the row, when
    some gave no value), the sample std over runs, and the bootstrap interval ``[lo, hi]``; ``delta``:
    the difference from the baseline row with its interval (``prerl.eval.stats.Interval``)."""

    mean: Optional[float]
    std: Optional[float]
    n: int
    of: Optional[int] = None
    lo: Optional[float] = None
    hi: Optional[float] = None
    delta: Optional[object] = None


def summarise(values: list[float], of: Optional[int] = None) -> Cell:
    """Mean and sample standard deviation (n − 1); one value has no std, none gives an empty cell."""
    if not values:
        return Cell(None, None, 0, of)
    m = mean(values)
    std = math.sqrt(sum((v - m) ** 2 for v in values) / (len(values) - 1)) if len(values) > 1 else None
    return Cell(m, std, len(values), of if of is not None and of != len(values) else None)


def per_problem(run: RunRecord, eval_set: str, step: int) -> Optional[dict]:
    """The run's per-problem results for ``eval_set`` at ``step`` (``per_problem/<set>_stepNNNNN.json``)."""
    return run.artifact(f"per_problem/{eval_set}_step{step:05d}.json")


@dataclass
class RowSamples:
    """Per row and set, a ``[seeds, problems]`` matrix of per-problem scores (problems in the same order
    in every row), what ``prerl.eval.stats.compare`` takes; ``runs``: the runs that gave a value, per row."""

    matrices: dict[str, dict[str, np.ndarray]]
    runs: dict[str, int]
    seeds_only: list[str] = field(default_factory=list)  # sets without per-problem results in some run
    unpaired: dict[str, int] = field(default_factory=dict)  # set -> problems left out: not in every row


def row_samples(
    groups: list[Group], sets: list[str], metric: str, step_of: Callable[[RunRecord], Optional[int]]
) -> RowSamples:
    """Each row's per-problem scores at the step ``step_of(run)`` of each of its runs.

    Problems are paired by id across rows (the ids every row has). A set for which some run has no
    per-problem results falls back, in every row, to the run's logged mean as a single "problem": its
    interval then covers the seeds only."""
    picked = {g.label: [(run, step) for run in g.runs if (step := step_of(run)) is not None] for g in groups}
    picked = {label: pairs for label, pairs in picked.items() if pairs}
    out = RowSamples({label: {} for label in picked}, {label: len(pairs) for label, pairs in picked.items()})
    for s in sets if picked else ():
        results = {label: [per_problem(run, s, step) for run, step in pairs] for label, pairs in picked.items()}
        if all(r is not None for rs in results.values() for r in rs):
            common = set.intersection(*(set(r["id"]) for rs in results.values() for r in rs))
            every = set.union(*(set(r["id"]) for rs in results.values() for r in rs))
            ids = sorted(common)
            if len(every) > len(common):
                out.unpaired[s] = len(every) - len(common)
            for label, rs in results.items():
                out.matrices[label][s] = np.stack([_scores_by_id(r, ids, metric) for r in rs])
        else:
            out.seeds_only.append(s)
            for label, pairs in picked.items():
                keys = [metric_key(run, s, metric) for run, _ in pairs]
                out.matrices[label][s] = np.array([[run.history[k][step]] for (run, step), k in zip(pairs, keys)])
    return out


def _scores_by_id(result: dict, ids: list[str], metric: str) -> np.ndarray:
    scores = problem_scores(result["correct"], int(result["K"]), metric)
    position = {pid: i for i, pid in enumerate(result["id"])}
    return scores[[position[pid] for pid in ids]]


def confounds(groups: list[Group], baseline: Optional[str], own: tuple[str, ...]) -> dict[str, list[str]]:
    """Per row, the config keys in which it differs from the baseline row other than the table's own
    keys ``own`` (what makes a row that row) and the options of a config group whose ``.name`` is one
    of them and differs (another algorithm brings its own clip range): ``["key (row value vs baseline's)"]``."""
    by_label = {g.label: config_of(g.runs[0]) for g in groups if g.runs}
    if baseline not in by_label:
        return {}
    base, out = by_label[baseline], {}
    for label, config in by_label.items():
        keys = sorted(k for k in set(config) | set(base) if config.get(k) != base.get(k))
        changed_groups = {
            k.removesuffix(".name") + "." for k in own if k.endswith(".name") and config.get(k) != base.get(k)
        }
        extra = [k for k in keys if k not in own and not k.startswith(tuple(changed_groups))]
        if extra and label != baseline:
            out[label] = [f"{k} ({config.get(k, '(unset)')} vs {base.get(k, '(unset)')})" for k in extra]
    return out
