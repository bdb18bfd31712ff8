"""The Markdown tables both studies' documents show: a part's accuracy table, Pass@k for every k, the
behaviour ratios, the solved-prompt dynamics and the gradient alignment, each a function of a ``Study``
and a task (None: no runs to show)."""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Optional

import numpy as np

from prerl.eval.stats import Interval

from .. import render
from ..alignment import PAPER as ALIGNMENT_PAPER
from ..figures import SOLVED, pass_at_k
from ..tables import TableSpec, accuracy_table
from .cells import GRPO, OWN, Study, cell_label
from .claims import NOT_REPRODUCED, REPRODUCED, Claim, verdict
from .quantities import (
    BEHAVIOUR_KEYS,
    FINAL,
    accuracy_contrast,
    alignment_mean,
    alignment_token_contrast,
    behaviour_at,
    behaviour_ratio,
    end_window,
    per_run,
    seed_mean,
    start_window,
    warmup_end_window,
    window_mean,
)
from .spec import Part


def cell(text: str) -> str:
    """Text for a Markdown table cell (a ``|`` would end the cell)."""
    return str(text).replace("|", "\\|")


def fmt(interval: Optional[Interval], digits: int = 2) -> str:
    if interval is None:
        return "-"
    return f"{interval.mean:+.{digits}f} [{interval.lo:+.{digits}f}, {interval.hi:+.{digits}f}]"


def bold(verdict: str) -> str:
    """A verdict that excludes the reference, in bold."""
    return f"**{verdict}**" if verdict in (REPRODUCED, NOT_REPRODUCED) else verdict


def claims_plan(claims: tuple[Claim, ...]) -> str:
    """The claims before any run: what is measured for each, on which side of its reference, or why not."""
    lines = ["| id | claim | paper | measured here (paper's side of the reference) | status |", "|---|---|---|---|---|"]
    for c in claims:
        side = f"{'>' if c.direction > 0 else '<'} {c.reference:g}"
        status = "not run yet" if c.measured else f"{c.skipped}: {c.untestable}"
        quantity = f"{cell(c.quantity)} ({side})" if c.quantity else "-"
        lines.append(f"| {c.id} | {cell(c.text)} | {cell(c.paper)} | {quantity} | {status} |")
    return "\n".join(lines)


def seeds_per_cell(study: Study, task: str) -> str:
    counts = {label: len(g.runs) for label, g in study.groups(task).items()}
    return ", ".join(f"{label} {n}" for label, n in sorted(counts.items()))


def part_table(study: Study, task: str, part: Part, ood: bool = False) -> Optional[str]:
    """The part's cells' accuracy on the test (or OOD) set, with each row's difference from the part's
    baseline (``analysis/tables.py``: the paired hierarchical bootstrap over the part's rows together)."""
    assert part.cells is not None, part.key
    cells = part.cells(study)
    runs = study.task_runs(task, cells)
    if not runs:
        return None
    spec = TableSpec(
        f"{part.key}_{task}",
        f"({part.key}) {task}: {part.title}" + (" — OOD set" if ood else ""),
        (),  # the runs are given, not read by sweep
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
    """GRPO's and DSRL's Pass@k for every k the runs logged, their difference and its verdict."""
    groups = study.groups(task)
    if GRPO not in groups or study.dsrl not in groups:
        return None
    curves = {label: pass_at_k(groups[label], eval_set, study.opts) for label in (GRPO, study.dsrl)}
    ks = sorted(set(curves[GRPO]) & set(curves[study.dsrl]))
    lines = [f"| k | {GRPO} | {study.dsrl} | Δ (DSRL − GRPO) | verdict |", "|---|---|---|---|---|"]
    for k in ks:
        terms = [(study.dsrl, FINAL, 1), (GRPO, FINAL, -1)]
        d = accuracy_contrast(study, task, terms, eval_set, f"pass_at_{k}")

        def text(i):
            return f"{i.mean:.1f} [{i.lo:.1f}, {i.hi:.1f}]"

        lines.append(
            f"| {k} | {text(curves[GRPO][k])} | {text(curves[study.dsrl][k])} | {fmt(d, 1)} | {verdict(d, +1)} |"
        )
    return "\n".join(lines) if ks else None


def behaviour_table(study: Study, task: str, categories: tuple[str, ...] = BEHAVIOUR_KEYS) -> Optional[str]:
    """Per reported cell and behaviour category: the base count per response, and the ratios to it after
    S updates and at the end."""
    cells = [c for c in study.reported if c in study.groups(task)]
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
    """Per reported cell: fully solved, fully unsolved and solved-at-least-once prompts per update, at the
    start, at the end of DSRL's warm-up and at the end, with intervals over seeds."""
    cells = [c for c in study.reported if c in study.groups(task)]
    if not cells:
        return None
    warmup = warmup_end_window(study)
    windows = {
        "first 3": start_window(study),
        f"updates {warmup[0]}–{study.dsrl_steps}": warmup,
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


ALIGNMENT_ROWS = (  # name, the per-task interval, the paper's number (a key of analysis.alignment.PAPER)
    ("mean inner product", lambda s, t: alignment_mean(s, t, "inner"), "inner_mean"),
    ("mean cosine", lambda s, t: alignment_mean(s, t, "cosine"), "cosine_mean"),
    ("share negative", lambda s, t: alignment_mean(s, t, "negative"), "negative_frac"),
    ("|gap| first 8 tokens − rest", lambda s, t: alignment_token_contrast(s, t, "early"), None),
    ("|gap| high − low entropy", lambda s, t: alignment_token_contrast(s, t, "entropy"), None),
)


def alignment_table(study: Study) -> Optional[str]:
    """The base models' alignment statistics per task beside the paper's (Qwen3-4B on AMC23)."""
    tasks = [t for t in study.tasks() if t in study.alignment]
    if not tasks:
        return None
    lines = [
        "| statistic | " + " | ".join(f"{t} [95%]" for t in tasks) + " | paper (Qwen3-4B, AMC23) |",
        "|---|" + "---|" * (len(tasks) + 1),
    ]
    for name, measure, key in ALIGNMENT_ROWS:
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
