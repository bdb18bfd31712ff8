"""Solved / unsolved dynamics per method, from the training metrics in MLflow (docs/paper.md#solved-and-unsolved-prompts).

The trainer logs, per update, how many of the batch's prompts had all samples correct
(``train/prompts/fully_solved``), none (``train/prompts/fully_unsolved``) or at least one
(``train/prompts/solved_at_least_once``), as the official code does (``fully_solved_question_cnt``, ...).
Runs logged before those counts existed have fractions ``train/groups/{all_correct,all_wrong}``
instead; they are turned into counts with ``prompts_per_step``. The runs of one method are averaged
and each method is one line; a dotted line marks the end of each method's warm-up.

    python -m analysis.dynamics --experiment prerl-mini
    python -m analysis.dynamics --runs <run_id> <run_id> --out outputs/analysis/dynamics.png
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import numpy as np
from mlflow.tracking import MlflowClient

from prerl.config.schema import TrackingConfig
from prerl.tracking.tracker import tracking_uri

COUNTS = {  # plotted name -> logged count
    "fully solved": "train/prompts/fully_solved",
    "fully unsolved": "train/prompts/fully_unsolved",
    "solved at least once": "train/prompts/solved_at_least_once",
}
FROM_FRACTIONS = {  # older runs: plotted name -> count from the logged fractions
    "fully solved": lambda f: f["all_correct"],
    "fully unsolved": lambda f: f["all_wrong"],
    "solved at least once": lambda f: 1.0 - f["all_wrong"],
}
SERIES = list(COUNTS)


def method_label(params: dict[str, str]) -> str:
    """``grpo`` for a plain run, ``nsr_prerl(20)→grpo`` for a warm-up of 20 updates then GRPO."""
    warmup, total = int(params.get("warmup_steps", 0)), int(params.get("total_steps", 0))
    algo, objective = params.get("algorithm.name", "?"), params.get("objective.name", "?")
    if warmup == 0:
        return algo
    return objective if warmup >= total else f"{objective}({warmup})→{algo}"


def run_counts(
    client: MlflowClient, run_id: str, label: str = "method"
) -> tuple[str, int, dict[str, dict[int, float]]]:
    """The run's label (its method, or its run name), warm-up length and, per series, count of prompts
    at each step."""
    run = client.get_run(run_id)
    params = run.data.params
    name = method_label(params) if label == "method" else (run.info.run_name or run_id)
    series = {n: {m.step: m.value for m in client.get_metric_history(run_id, key)} for n, key in COUNTS.items()}
    if not series["fully solved"]:  # a run from before the counts: fractions of prompts_per_step
        per_step = int(params.get("prompts_per_step", 1))
        history = {
            k: {m.step: m.value for m in client.get_metric_history(run_id, f"train/groups/{k}")}
            for k in ("all_correct", "all_wrong")
        }
        steps = sorted(set(history["all_correct"]) & set(history["all_wrong"]))
        series = {
            n: {s: per_step * fn({k: history[k][s] for k in history}) for s in steps}
            for n, fn in FROM_FRACTIONS.items()
        }
    return name, int(params.get("warmup_steps", 0)), series


def collect(client: MlflowClient, run_ids: list[str], label: str = "method") -> dict[str, dict]:
    """Per label: warm-up length, runs, and per series the mean count at each step over its runs."""
    grouped: dict[str, dict] = {}
    for run_id in run_ids:
        label_, warmup, series = run_counts(client, run_id, label)
        if not next(iter(series.values())):
            continue  # no training steps logged
        entry = grouped.setdefault(
            label_, {"warmup": warmup, "runs": [], "series": defaultdict(lambda: defaultdict(list))}
        )
        entry["runs"].append(run_id)
        for name, points in series.items():
            for step, value in points.items():
                entry["series"][name][step].append(value)
    return {
        label: {
            "warmup": e["warmup"],
            "runs": e["runs"],
            "series": {n: {s: float(np.mean(v)) for s, v in sorted(pts.items())} for n, pts in e["series"].items()},
        }
        for label, e in grouped.items()
    }


def plot(methods: dict[str, dict], path: str | Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(SERIES), figsize=(5 * len(SERIES), 4), sharex=True)
    for i, (label, m) in enumerate(sorted(methods.items())):
        colour = f"C{i}"
        for ax, name in zip(axes, SERIES):
            pts = m["series"][name]
            ax.plot(list(pts), list(pts.values()), color=colour, label=f"{label} (n={len(m['runs'])})")
            if m["warmup"]:
                ax.axvline(m["warmup"], color=colour, ls=":", lw=1)
    for ax, name in zip(axes, SERIES):
        ax.set(title=f"{name} prompts per step", xlabel="update", ylabel="prompts")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def find_runs(client: MlflowClient, experiment: str) -> list[str]:
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        raise SystemExit(f"no MLflow experiment {experiment!r} at {client.tracking_uri}")
    return [r.info.run_id for r in client.search_runs([exp.experiment_id], max_results=1000)]


def main(argv: list[str] | None = None) -> dict[str, dict]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--experiment", default="prerl-mini", help="MLflow experiment whose runs to plot")
    p.add_argument("--runs", nargs="*", help="run ids instead of a whole experiment")
    p.add_argument("--uri", help="tracking URI (default: $MLFLOW_TRACKING_URI or ./mlflow.db)")
    p.add_argument(
        "--label",
        choices=["method", "run_name"],
        default="method",
        help="one line per method (runs averaged) or per run name",
    )
    p.add_argument("--out", default="outputs/analysis/dynamics.png")
    args = p.parse_args(argv)
    client = MlflowClient(tracking_uri(TrackingConfig(uri=args.uri)))
    methods = collect(client, args.runs or find_runs(client, args.experiment), args.label)
    if not methods:
        raise SystemExit("no run with train/prompts/* (or train/groups/*) metrics found")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    plot(methods, out)
    out.with_suffix(".json").write_text(json.dumps(methods, indent=1))
    for label, m in sorted(methods.items()):
        solved = m["series"]["fully solved"]
        first, last = next(iter(solved.values())), list(solved.values())[-1]
        print(f"{label}: {len(m['runs'])} run(s), fully solved per step {first:.1f} → {last:.1f}")
    print(f"wrote {out} and {out.with_suffix('.json')}")
    return methods


if __name__ == "__main__":
    main()
