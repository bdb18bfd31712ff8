"""Accuracy and response length against the update, per objective and mini task (the NSR-PreRL report).

Reads the FINISHED runs of the ``objectives`` sweep in one MLflow experiment, groups them by task
(``model.mini.name``) and objective, and writes a Markdown table (mean ± sample std over seeds, and
every seed's value, at each eval step) and one PNG: a row per task, panels for test Avg@K, OOD Avg@K
and the training response length.

    python train.py -m +sweep=objectives objective=psr_prerl,nsr_prerl,prerl,rl seed=0,1,2 \\
        model=mini,mini_styles tracking.experiment=mini-objectives
    python -m analysis.objective_curves --experiment mini-objectives --out docs/nsr-prerl-investigation
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from mlflow.tracking import MlflowClient

from prerl.config.schema import TrackingConfig
from prerl.tracking.tracker import tracking_uri

from .aggregate import Group, group_runs, metric_key
from .figures import mean_series, pyplot, save
from .runs import load_runs

LENGTH = "train/response_length"


def task_and_objective(params: dict[str, str]) -> str:
    return f"{params.get('model.mini.name', params.get('model.path'))} / {params.get('objective.name')}"


def values_at(group: Group, key_of, step: int) -> list[float]:
    out = []
    for run in group.runs:
        key = key_of(run)
        if key and step in run.history.get(key, {}):
            out.append(run.history[key][step])
    return out


def cell(values: list[float], scale: float = 100.0, digits: int = 1) -> str:
    if not values:
        return "-"
    v = np.array(values) * scale
    sd = f" ± {v.std(ddof=1):.{digits}f}" if len(v) > 1 else ""
    seeds = ", ".join(f"{x:.{digits}f}" for x in v)
    return f"{v.mean():.{digits}f}{sd} ({seeds})"


def markdown(groups: list[Group], eval_set: str) -> str:
    steps = sorted({s for g in groups for r in g.runs for s in r.history.get(metric_key(r, eval_set, "avg") or "", {})})
    lines = [
        "| task / objective | seeds | " + " | ".join(f"{eval_set} @ {s}" for s in steps) + " |",
        "|---|---|" + "---|" * len(steps),
    ]
    for g in groups:
        row = [cell(values_at(g, lambda r: metric_key(r, eval_set, "avg"), s)) for s in steps]
        lines.append(f"| {g.label} | {len(g.runs)} | " + " | ".join(row) + " |")
    return "\n".join(lines)


def length_markdown(groups: list[Group], steps: list[int]) -> str:
    lines = ["| task / objective | " + " | ".join(f"length @ {s}" for s in steps) + " |", "|---|" + "---|" * len(steps)]
    for g in groups:
        lines.append(f"| {g.label} | " + " | ".join(cell(values_at(g, lambda r: LENGTH, s), 1.0) for s in steps) + " |")
    return "\n".join(lines)


def plot(groups: list[Group], sets: list[str], path: Path) -> Path:
    plt = pyplot()
    tasks = sorted({g.label.split(" / ")[0] for g in groups})
    panels = [*(f"{s} Avg@K" for s in sets), "response length"]
    fig, axes = plt.subplots(len(tasks), len(panels), figsize=(4.3 * len(panels), 3.4 * len(tasks)), squeeze=False)
    for row, task in enumerate(tasks):
        for i, g in enumerate(gr for gr in groups if gr.label.startswith(task + " / ")):
            label = f"{g.label.split(' / ')[1]} ({len(g.runs)})"
            for col, s in enumerate(sets):
                for run in g.runs:  # thin lines: seeds; thick: their mean
                    key = metric_key(run, s, "avg")
                    h = run.history.get(key, {}) if key else {}
                    axes[row][col].plot(list(h), [100 * v for v in h.values()], color=f"C{i}", lw=0.6, alpha=0.4)
                key = metric_key(g.runs[0], s, "avg")
                series = mean_series(g, key) if key else {}
                axes[row][col].plot(
                    list(series), [100 * v.mean for v in series.values()], color=f"C{i}", lw=2, label=label
                )
            series = mean_series(g, LENGTH)
            axes[row][-1].plot(list(series), [v.mean for v in series.values()], color=f"C{i}", lw=1.5, label=label)
        for col, title in enumerate(panels):
            axes[row][col].set(title=f"{task}: {title}", xlabel="update")
        axes[row][0].legend(fontsize=7)
    return save(fig, path)


def main(argv: list[str] | None = None) -> str:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--experiment", required=True)
    p.add_argument("--uri")
    p.add_argument("--sets", nargs="+", default=["test", "ood"])
    p.add_argument("--out", default="docs/nsr-prerl-investigation")
    args = p.parse_args(argv)
    client = MlflowClient(tracking_uri(TrackingConfig(uri=args.uri)))
    runs = load_runs(client, args.experiment, ["objectives"])
    if not runs:
        raise SystemExit(f"no finished runs of the objectives sweep in experiment {args.experiment!r}")
    groups = sorted(group_runs(runs, task_and_objective), key=lambda g: g.label)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    figure = plot(groups, args.sets, out / f"{args.experiment}_curves.png")
    length_steps = sorted({1, *range(10, max(max(r.history.get(LENGTH, {0: 0})) for r in runs) + 1, 10)})
    text = "\n\n".join([*(markdown(groups, s) for s in args.sets), length_markdown(groups, length_steps)])
    (out / f"{args.experiment}_curves.md").write_text(text + "\n")
    print(text)
    print(f"figure: {figure}")
    return text


if __name__ == "__main__":
    main()
