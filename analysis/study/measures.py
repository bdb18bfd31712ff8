"""What the real-model study measures beyond the claims, as plain functions of its runs and files.

Each returns numbers (or rows of them); ``analysis.study.document`` turns them into Markdown. The claims
and their intervals are ``analysis/study/claim_measures.py``'s, computed on the same ``Study`` object.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import numpy as np

from prerl.eval.stats import Interval

from ..aggregate import eval_curve
from ..nsr_diagnostics import gradient_weight
from .cells import Study
from .claims import INCONCLUSIVE, NOT_REPRODUCED, REPRODUCED
from .mini_columns import MiniCell
from .quantities import per_run, window_mean

VERDICTS = (REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE)
POSITION_EDGES = (0, 8, 16, 32, 64, 128)  # token positions: the paper's "early tokens" are the first few


# --- curves ----------------------------------------------------------------------------------------


def eval_curves(study: Study, task: str, label: str, eval_set: str = "test") -> dict[int, list[float]]:
    """Per eval step, the cell's runs' Avg@K (percent) there."""
    group = study.groups(task).get(label)
    out: dict[int, list[float]] = {}
    for run in group.runs if group else []:
        for step, values in eval_curve(run, [eval_set], "avg").items():
            out.setdefault(step, []).append(100 * values[eval_set])
    return dict(sorted(out.items()))


def length_points(study: Study) -> list[int]:
    """The updates at which response length is reported: the first, every eval step, the last."""
    every = max(1, study.dsrl_steps)
    return sorted({1, *range(every, study.total_steps + 1, every), study.total_steps})


def length_at(study: Study, task: str, label: str, update: int) -> list[float]:
    """The cell's runs' training response length (tokens) at ``update``."""
    return per_run(study, task, label, lambda r: window_mean(r, "train/response_length", update, update))


# --- gradient alignment ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Bin:
    label: str
    tokens: int
    abs_gap: float  # mean |log P(y_t | x, ·) − log P(y_t | ·)|


def gap_by_position(tokens: dict[str, np.ndarray], edges: tuple[int, ...] = POSITION_EDGES) -> list[Bin]:
    """Mean |gap| per range of token positions (the last range open-ended)."""
    position, gap = np.asarray(tokens["position"]), np.abs(np.asarray(tokens["gap"]))
    bins = []
    for lo, hi in zip(edges, [*edges[1:], math.inf]):
        inside = (position >= lo) & (position < hi)
        if inside.any():
            label = f"{lo}–{hi - 1}" if hi != math.inf else f"{lo}+"
            bins.append(Bin(label, int(inside.sum()), float(gap[inside].mean())))
    return bins


def gap_by_entropy(tokens: dict[str, np.ndarray], quantiles: int = 4) -> list[Bin]:
    """Mean |gap| per quantile of the policy's entropy at the token (lowest first)."""
    entropy, gap = np.asarray(tokens["entropy"]), np.abs(np.asarray(tokens["gap"]))
    if not len(gap):
        return []
    edges = np.quantile(entropy, np.linspace(0, 1, quantiles + 1))
    which = np.clip(np.searchsorted(edges, entropy, side="right") - 1, 0, quantiles - 1)
    return [
        Bin(
            f"Q{q + 1} ({edges[q]:.2f}–{edges[q + 1]:.2f} nats)", int((which == q).sum()), float(gap[which == q].mean())
        )
        for q in range(quantiles)
        if (which == q).any()
    ]


# --- the NSR-PreRL diagnosis -----------------------------------------------------------------------


@dataclass(frozen=True)
class ClassRow:
    """One token class of base-model responses: its share of tokens, mean log π with the prompt and with c
    alone, and its share of the gradient weight Σ(1 − π) in each space."""

    task: str
    cls: str
    share: float
    logp_post: float
    logp_pre: float
    weight_post: float
    weight_pre: float


def class_rows(task: str, table: dict[str, dict[str, float]]) -> list[ClassRow]:
    post, pre = gradient_weight(table, "post"), gradient_weight(table, "pre")
    return [
        ClassRow(
            task,
            cls,
            row["share"],
            row["logp_post"],
            row["logp_pre"],
            post.get(cls, math.nan),
            pre.get(cls, math.nan),
        )
        for cls, row in table.items()
    ]


COPIED = {"copied": "copied", "operand": "copied"}  # the mini column task calls its copied digits operands


def copied_weight(table: dict[str, dict[str, float]], space: str = "pre") -> Optional[float]:
    """The share of the gradient weight on tokens copied from the prompt (word problems: copied numbers;
    mini: operand digits)."""
    weights = gradient_weight(table, space)
    found = [w for cls, w in weights.items() if cls in COPIED]
    return found[0] if found else None


# --- verdicts across tasks -------------------------------------------------------------------------


def changed(real: str, mini: dict[str, MiniCell]) -> list[str]:
    """The mini tasks whose verdict is another one of the three than the real model's."""
    if real not in VERDICTS:
        return []
    return [task for task, cell in mini.items() if cell.verdict in VERDICTS and cell.verdict != real]


def collapse_kind(change: Optional[Interval], base: Optional[float]) -> str:
    """What NSR-PreRL alone did to accuracy, from its final − base interval (points) and the base (%):
    ``helps`` (the interval lies above 0), ``collapses`` (below 0 and the mean change loses more than half
    the base accuracy), ``degrades`` (below 0, less than that), ``neither`` (the interval holds 0)."""
    if change is None:
        return "unknown"
    if change.lo > 0:
        return "helps"
    if change.hi < 0:
        return "collapses" if base is not None and -change.mean > base / 2 else "degrades"
    return "neither"


def mean_or_none(values: list[float]) -> Optional[float]:
    return float(np.mean(values)) if values else None
