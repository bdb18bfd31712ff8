"""Pure aggregation of run records: group by config, pick the step, mean ± std over seeds.

Runs are averaged only when their configs agree on every key except the seed (and keys that do
not change what a run computes): a table row whose runs differ elsewhere is split, and its label
names the differing keys, so different configs are never averaged by accident.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Callable, Optional, Union

from analysis.runs import RunRecord
from prerl.completed import NOT_IDENTITY

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
    """``final``: the last eval step; ``best``: the step with the highest mean over the sets; or a number."""
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
class Cell:
    """Mean ± sample std over ``n`` runs (``of``: runs in the row, when some gave no value)."""

    mean: Optional[float]
    std: Optional[float]
    n: int
    of: Optional[int] = None


def summarise(values: list[float], of: Optional[int] = None) -> Cell:
    """Mean and sample standard deviation (n − 1); one value has no std, none gives an empty cell."""
    if not values:
        return Cell(None, None, 0, of)
    m = mean(values)
    std = math.sqrt(sum((v - m) ** 2 for v in values) / (len(values) - 1)) if len(values) > 1 else None
    return Cell(m, std, len(values), of if of is not None and of != len(values) else None)
