"""The paper's figures as PNG from run records: Pass@k curves, training curves, solved/unsolved counts.

One line per table row with a band: for Pass@k the 95% interval of the paired hierarchical bootstrap
(seeds and problems, as the tables' cells), for training curves the mean over seeds step by step
with its interval over seeds. A dotted line marks the end of a row's warm-up. Files are written with
matplotlib's Agg backend, so no display is needed.
"""

from __future__ import annotations

import re
from pathlib import Path

from prerl.eval.stats import Interval, compare, seed_interval

from .aggregate import Group, row_samples

TRAINING = {"train/accuracy": "training accuracy", "train/response_length": "response length (tokens)"}
SOLVED = {
    "train/prompts/fully_solved": "fully solved prompts",
    "train/prompts/fully_unsolved": "fully unsolved prompts",
    "train/prompts/solved_at_least_once": "prompts solved at least once",
}


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def mean_series(group: Group, metric: str, level: float = 0.95) -> dict[int, Interval]:
    """Per step, the mean of ``metric`` over the group's runs that logged it there, with its interval
    over those runs (a single run: no width)."""
    by_step: dict[int, list[float]] = {}
    for run in group.runs:
        for step, value in run.history.get(metric, {}).items():
            by_step.setdefault(step, []).append(value)
    return {s: seed_interval(v, level, n_boot=500) for s, v in sorted(by_step.items())}


def pass_at_k(group: Group, eval_set: str, opts) -> dict[int, Interval]:
    """k -> Pass@k (%) of the group's runs, each at the step ``opts.rule()`` picks, with its interval
    (seeds and problems; seeds only where a run has no per-problem results)."""
    pattern = re.compile(rf"eval/{re.escape(eval_set)}/pass_at_(\d+)$")
    ks = sorted({int(m.group(1)) for run in group.runs for key in run.history if (m := pattern.match(key))})
    rule, out = opts.rule(), {}
    for k in ks:
        samples = row_samples([group], [eval_set], f"pass_at_{k}", lambda run: rule.pick(run, [eval_set]))
        if group.label in samples.matrices:
            summary = compare(samples.matrices, average=None, level=opts.level, n_boot=opts.n_boot, seed=opts.seed)
            out[k] = summary[group.label].estimate[eval_set].scaled(100)
    return out


def line_with_band(ax, curve: dict[int, Interval], color: str, label: str, marker=None) -> None:
    xs = list(curve)
    ax.plot(xs, [i.mean for i in curve.values()], color=color, label=label, marker=marker)
    ax.fill_between(xs, [i.lo for i in curve.values()], [i.hi for i in curve.values()], color=color, alpha=0.2, lw=0)


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


def plot_pass_at_k(groups: list[Group], sets: list[str], opts, path: Path) -> Path:
    plt = pyplot()
    fig, axes = plt.subplots(1, max(len(sets), 1), figsize=(4.5 * max(len(sets), 1), 3.8), squeeze=False)
    for ax, eval_set in zip(axes[0], sets):
        curves = {g.label: pass_at_k(g, eval_set, opts) for g in groups}
        for i, g in enumerate(groups):
            if curves[g.label]:
                line_with_band(ax, curves[g.label], f"C{i}", f"{g.label} ({len(g.runs)})", marker="o")
        ax.set(
            title=f"{eval_set}: Pass@k ({opts.step} step, {100 * opts.level:g}% band)", xlabel="k", ylabel="Pass@k (%)"
        )
        ks = sorted({k for curve in curves.values() for k in curve})
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
                line_with_band(ax, series, f"C{i}", f"{g.label} ({len(g.runs)})")
            warmup = int(g.runs[0].params.get("warmup_steps", 0))
            if 0 < warmup < int(g.runs[0].params.get("total_steps", 0)):
                ax.axvline(warmup, color=f"C{i}", ls=":", lw=1)
        ax.set(title=title, xlabel="update")
    return save(legend(fig, axes[0]), path)


def figures_for(name: str, groups: list[Group], sets: list[str], opts, out_dir: Path) -> list[Path]:
    """The three figures of one table's rows (``opts``: the tables' ``TableOptions``):
    ``<name>_pass_at_k.png``, ``_training.png``, ``_solved.png``."""
    return [
        plot_pass_at_k(groups, sets, opts, out_dir / f"{name}_pass_at_k.png"),
        plot_series(groups, TRAINING, out_dir / f"{name}_training.png"),
        plot_series(groups, SOLVED, out_dir / f"{name}_solved.png"),
    ]
