"""The paper's tables and figures from the sweep runs in MLflow (``make ablation-table``).

    python -m analysis.ablation_table                          # the newest sweep or multirun
    python -m analysis.ablation_table --experiment prerl-mini --step best --metric pass_at_8
    python -m analysis.ablation_table --sweep-id multirun/2026-12-02/16-06-59   # one multirun

The newest run decides what is read. A run of ``+sweep=NAME`` gives ``<out>/<table>.md|.tex|.csv``
for each table whose sweep has finished runs (main, warmup, warmup_kind, objectives, ood, efficiency).
A job of a plain multirun (``python train.py -m warmup_steps=10,15,20,25``) gives the table of that
multirun's jobs (its ``sweep_id`` tag): over ``warmup_steps`` the warm-up table, over the algorithm
the main table, over anything else rows named by the keys its jobs varied. ``tables.md`` holds all,
with PNG figures beside; the folder is logged as the artifacts of one summary run
(``run_name=ablation-table``) in the experiment.
"""

from __future__ import annotations

import argparse
from functools import lru_cache
from pathlib import Path

from mlflow.tracking import MlflowClient

from analysis import render
from analysis.common import open_run
from analysis.figures import figures_for
from analysis.aggregate import differing_keys
from analysis.runs import load_multirun, load_runs, newest_sweep_experiment, newest_sweep_run
from analysis.tables import OOD_SETS, TABLES, TableOptions, eval_sets, multirun_spec, ordered_groups
from prerl.completed import MULTIRUN
from prerl.config import TrackingConfig
from prerl.tracking import tracking_uri, with_retry


def parse_step(text: str):
    if text in ("final", "best"):
        return text
    if text.isdigit():
        return int(text)
    raise argparse.ArgumentTypeError(f"--step {text!r}: final, best or a step number")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--experiment", help="MLflow experiment (default: the one with the newest sweep run)")
    p.add_argument("--uri", help="tracking URI (default: $MLFLOW_TRACKING_URI or ./mlflow.db)")
    p.add_argument("--metric", default="avg", help="per-set metric: avg (Avg@K) or a logged one, e.g. pass_at_4")
    p.add_argument("--step", type=parse_step, default="final",
                   help="final, best (per run, the eval step with the best mean over the table's sets) or N")
    p.add_argument("--thresholds", type=float, nargs="+", default=[0.45, 0.58],
                   help="efficiency table: accuracies (fractions) to reach")
    p.add_argument("--ood-sets", nargs="+", default=list(OOD_SETS), help="eval sets counted as out of distribution")
    p.add_argument("--tables", nargs="+", choices=[t.name for t in TABLES], help="only these tables")
    p.add_argument("--sweep-id", help="the table of this multirun (default: the newest run's, when it is one)")
    p.add_argument("--out", help="output folder (default: outputs/tables/<experiment>)")
    p.add_argument("--no-log", action="store_true", help="do not log a summary run to MLflow")
    return p


def main(argv: list[str] | None = None) -> Path:
    args = parser().parse_args(argv)
    uri = tracking_uri(TrackingConfig(uri=args.uri))
    client = MlflowClient(uri)
    experiment = args.experiment or with_retry(newest_sweep_experiment, client)
    if experiment is None:
        raise SystemExit(f"no sweep runs in {uri}: run a sweep first, e.g. make sweep-warmup")
    opts = TableOptions(args.metric, args.step, tuple(args.ood_sets), tuple(args.thresholds))
    out = Path(args.out or Path("outputs/tables") / experiment)
    out.mkdir(parents=True, exist_ok=True)

    newest = with_retry(newest_sweep_run, client, experiment)
    sweep_id = args.sweep_id or (newest.data.tags.get("sweep_id") if newest is not None and not args.tables
                                 and newest.data.tags.get("sweep") == MULTIRUN else None)
    if sweep_id:
        runs = load_multirun(client, experiment, sweep_id)
        varied = differing_keys(runs)
        print(f"read {len(runs)} finished runs of multirun {sweep_id} in {experiment!r} (varied: "
              f"{', '.join(varied) or 'seeds only'}): {', '.join(r.run_id for r in runs)}")
        jobs = [(multirun_spec(varied), runs)] if runs else []
    else:
        @lru_cache(maxsize=None)
        def runs_of(sweeps: tuple[str, ...]):
            return load_runs(client, experiment, sweeps)

        jobs = [(spec, runs_of(spec.sweeps)) for spec in TABLES if not args.tables or spec.name in args.tables]
    written, sections = [], []
    for spec, runs in jobs:
        if not runs:
            print(f"{spec.name}: no finished runs of sweep {', '.join(spec.sweeps)} in {experiment!r}")
            continue
        if not sweep_id:
            print(f"{spec.name}: read {len(runs)} finished runs of sweep {', '.join(spec.sweeps)}")
        table = spec.build(spec, runs, opts)
        for suffix, text in ((".md", render.markdown(table)), (".tex", render.latex(table)), (".csv", render.csv_text(table))):
            (out / f"{spec.name}{suffix}").write_text(text)
        sections.append(render.markdown(table))
        written.append(spec.name)
        if spec.figures:
            figures_for(spec.name, ordered_groups(spec, runs), eval_sets(runs, "avg", spec.ood, opts.ood_sets),
                        opts.step, out)
    if not written:
        where = f"multirun {sweep_id}" if sweep_id else "sweep"
        raise SystemExit(f"no finished {where} runs in experiment {experiment!r} at {uri}")
    report = f"# Tables from MLflow experiment `{experiment}`\n\n" + "\n".join(sections)
    (out / "tables.md").write_text(report)
    print(report)
    if not args.no_log:
        tracker = open_run(experiment, "ablation-table", {"metric": args.metric, "step": str(args.step),
                                                          "thresholds": args.thresholds, "tables": written}, args.uri)
        with_retry(tracker.client.log_artifacts, tracker.run_id, str(out))
        tracker.finish()
        print(f"logged {out} as the artifacts of MLflow run {tracker.run_id}")
    print(f"wrote {', '.join(written)} to {out}")
    return out


if __name__ == "__main__":
    main()
