"""The paper's figures as PNG from run records: Pass@k curves, training curves, solved/unsolved counts.

One line per table row (its runs averaged step by step); a dotted line marks the end of a row's
warm-up. Files are written with matplotlib's Agg backend, so no display is needed.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from analysis.aggregate import Group, Step, choose_step, eval_curve

TRAINING = {"train/accuracy": "training accuracy", "train/response_length": "response length (tokens)"}
SOLVED = {"train/prompts/fully_solved": "fully solved prompts", "train/prompts/fully_unsolved": "fully unsolved prompts",
          "train/prompts/solved_at_least_once": "prompts solved at least once"}


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def mean_series(group: Group, metric: str) -> dict[int, float]:
    """Per step, the mean of ``metric`` over the group's runs that logged it there."""
    by_step: dict[int, list[float]] = {}
    for run in group.runs:
        for step, value in run.history.get(metric, {}).items():
            by_step.setdefault(step, []).append(value)
    return {s: float(np.mean(v)) for s, v in sorted(by_step.items())}


def pass_at_k(group: Group, eval_set: str, step: Step) -> dict[int, float]:
    """k -> mean Pass@k (%) over the group's runs, each at its ``step`` (final / best / a number)."""
    pattern = re.compile(rf"eval/{re.escape(eval_set)}/pass_at_(\d+)$")
    by_k: dict[int, list[float]] = {}
    for run in group.runs:
        at = choose_step(eval_curve(run, [eval_set], "avg"), step)
        for key, history in run.history.items():
            if (m := pattern.match(key)) and at in history:
                by_k.setdefault(int(m.group(1)), []).append(100 * history[at])
    return {k: float(np.mean(v)) for k, v in sorted(by_k.items())}


def legend(fig, axes):
    """One legend, on the first panel that has lines."""
    for ax in axes:
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
            break
    return fig


def save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    pyplot().close(fig)
    return path


def plot_pass_at_k(groups: list[Group], sets: list[str], step: Step, path: Path) -> Path:
    plt = pyplot()
    fig, axes = plt.subplots(1, len(sets), figsize=(4.5 * len(sets), 3.8), squeeze=False)
    for ax, eval_set in zip(axes[0], sets):
        for i, g in enumerate(groups):
            curve = pass_at_k(g, eval_set, step)
            if curve:
                ax.plot(list(curve), list(curve.values()), marker="o", color=f"C{i}", label=f"{g.label} ({len(g.runs)})")
        ax.set(title=f"{eval_set}: Pass@k ({step} step)", xlabel="k", ylabel="Pass@k (%)")
        ks = sorted({k for g in groups for k in pass_at_k(g, eval_set, step)})
        if ks:
            ax.set_xscale("log", base=2)
            ax.set_xticks(ks, [str(k) for k in ks])
    return save(legend(fig, axes[0]), path)


def plot_series(groups: list[Group], metrics: dict[str, str], path: Path) -> Path:
    """One panel per metric, against the training step."""
    plt = pyplot()
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.5 * len(metrics), 3.8), squeeze=False)
    for ax, (metric, title) in zip(axes[0], metrics.items()):
        for i, g in enumerate(groups):
            series = mean_series(g, metric)
            if series:
                ax.plot(list(series), list(series.values()), color=f"C{i}", label=f"{g.label} ({len(g.runs)})")
            warmup = int(g.runs[0].params.get("warmup_steps", 0))
            if 0 < warmup < int(g.runs[0].params.get("total_steps", 0)):
                ax.axvline(warmup, color=f"C{i}", ls=":", lw=1)
        ax.set(title=title, xlabel="update")
    return save(legend(fig, axes[0]), path)


def figures_for(name: str, groups: list[Group], sets: list[str], step: Step, out_dir: Path) -> list[Path]:
    """The three figures of one table's rows: ``<name>_pass_at_k.png``, ``_training.png``, ``_solved.png``."""
    return [plot_pass_at_k(groups, sets, step, out_dir / f"{name}_pass_at_k.png"),
            plot_series(groups, TRAINING, out_dir / f"{name}_training.png"),
            plot_series(groups, SOLVED, out_dir / f"{name}_solved.png")]
