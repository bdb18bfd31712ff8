"""The paper's tables and figures from the sweep runs in MLflow (``make ablation-table``).

    python -m analysis.ablation_table                          # the newest sweep or multirun
    python -m analysis.ablation_table --experiment prerl-mini --metric pass_at_8 --baseline S=0
    python -m analysis.ablation_table --step best --best-on ood     # step chosen on ood; ood not reported
    python -m analysis.ablation_table --sweep-id multirun/2026-12-02/16-06-59   # one multirun

The newest run decides what is read. A run of ``+sweep=NAME`` gives ``<out>/<table>.md|.tex|.csv``
for each table whose sweep has finished runs (main, warmup, warmup_kind, objectives, ood, efficiency).
A job of a plain multirun (``python train.py -m warmup_steps=10,15,20,25``) gives the table of that
multirun's jobs (its ``sweep_id`` tag): over ``warmup_steps`` the warm-up table, over the algorithm
the main table, over anything else rows named by the keys its jobs varied. ``tables.md`` holds all,
with PNG figures beside; the folder is logged as the artifacts of one summary run
(``run_name=ablation-table``) in the experiment.

Every cell is a mean with its 95% interval over seeds and problems, and every row's difference from
the baseline row (``--baseline``; plain GRPO by default) has its own interval: docs/sweeps.md#reading-a-table.
"""

from __future__ import annotations

import argparse
import os
import time
from functools import lru_cache
from pathlib import Path

from mlflow.tracking import MlflowClient

from prerl.config.schema import TrackingConfig
from prerl.tracking.completed import MULTIRUN
from prerl.tracking.run_info import PARENT_TAG
from prerl.tracking.tracker import tracking_uri, with_retry

from . import render
from .aggregate import differing_keys
from .common import open_run
from .figures import figures_for
from .runs import load_multirun, load_runs, newest_sweep_experiment, newest_sweep_run
from .tables import OOD_SETS, TABLES, TableOptions, eval_sets, multirun_spec, ordered_groups


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
    p.add_argument(
        "--step",
        type=parse_step,
        default="final",
        help="final, N, or best: per run the eval step with the best metric on --best-on",
    )
    p.add_argument("--best-on", help="with --step best: the eval set the step is chosen on (then not reported)")
    p.add_argument("--baseline", help="the row every Δ is taken against (default: plain GRPO, else the first row)")
    p.add_argument("--level", type=float, default=0.95, help="interval level")
    p.add_argument("--n-boot", type=int, default=2000, help="bootstrap draws")
    p.add_argument(
        "--thresholds",
        type=float,
        nargs="+",
        default=[0.45, 0.58],
        help="efficiency table: accuracies (fractions) to reach",
    )
    p.add_argument("--ood-sets", nargs="+", default=list(OOD_SETS), help="eval sets counted as out of distribution")
    p.add_argument("--tables", nargs="+", choices=[t.name for t in TABLES], help="only these tables")
    p.add_argument(
        "--sweep-id",
        help="the table of this multirun (default: the newest run's, when it is one); "
        "with --tables, those tables of its runs",
    )
    p.add_argument("--out", help="output folder (default: outputs/tables/<experiment>)")
    p.add_argument("--no-log", action="store_true", help="do not log a summary run to MLflow")
    return p


def main(argv: list[str] | None = None) -> Path:
    args = parser().parse_args(argv)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # one bar per small JSON read is noise
    uri = tracking_uri(TrackingConfig(uri=args.uri))
    client = MlflowClient(uri)
    experiment = args.experiment or with_retry(newest_sweep_experiment, client)
    if experiment is None:
        raise SystemExit(f"no sweep runs in {uri}: run a sweep first, e.g. make sweep-warmup")
    try:
        opts = TableOptions(
            metric=args.metric,
            step=args.step,
            best_on=args.best_on,
            ood_sets=tuple(args.ood_sets),
            thresholds=tuple(args.thresholds),
            baseline=args.baseline,
            level=args.level,
            n_boot=args.n_boot,
        )
        opts.rule()
    except ValueError as err:
        raise SystemExit(str(err)) from err
    out = Path(args.out or Path("outputs/tables") / experiment)
    out.mkdir(parents=True, exist_ok=True)

    newest = with_retry(newest_sweep_run, client, experiment)
    sweep_id = args.sweep_id or (
        newest.data.tags.get("sweep_id")
        if newest is not None and not args.tables and newest.data.tags.get("sweep") == MULTIRUN
        else None
    )
    if sweep_id:
        runs = load_multirun(client, experiment, sweep_id)
        varied = differing_keys(runs)
        print(
            f"read {len(runs)} finished runs of multirun {sweep_id} in {experiment!r} (varied: "
            f"{', '.join(varied) or 'seeds only'}): {', '.join(r.run_id for r in runs)}"
        )
        specs = [spec for spec in TABLES if spec.name in args.tables] if args.tables else [multirun_spec(varied)]
        jobs = [(spec, runs) for spec in specs] if runs else []
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
        start = time.perf_counter()
        try:
            table = spec.build(spec, runs, opts)
        except ValueError as err:  # e.g. a --baseline that is not a row
            raise SystemExit(f"{spec.name}: {err}") from err
        print(f"{spec.name}: statistics of {len(runs)} runs in {time.perf_counter() - start:.2f} s")
        for suffix, text in (
            (".md", render.markdown(table)),
            (".tex", render.latex(table)),
            (".csv", render.csv_text(table)),
        ):
            (out / f"{spec.name}{suffix}").write_text(text)
        sections.append(render.markdown(table))
        written.append(spec.name)
        if spec.figures:
            figures_for(
                spec.name,
                ordered_groups(spec, runs),
                opts.rule().reported(eval_sets(runs, "avg", spec.ood, opts.ood_sets)),
                opts,
                out,
            )
    if not written:
        where = f"multirun {sweep_id}" if sweep_id else "sweep"
        raise SystemExit(f"no finished {where} runs in experiment {experiment!r} at {uri}")
    report = f"# Tables from MLflow experiment `{experiment}`\n\n" + "\n".join(sections)
    (out / "tables.md").write_text(report)
    print(report)
    parents = {r.tags.get(PARENT_TAG) for _, runs in jobs for r in runs} if sweep_id else set()
    if not args.no_log and len(parents) == 1 and None not in parents:  # the multirun's parent run holds its table
        (parent,) = parents
        with_retry(client.log_artifacts, parent, str(out), "ablation_table")
        print(f"logged {out} as artifacts ablation_table/ of the multirun's parent run {parent}")
    elif not args.no_log:
        tracker = open_run(
            experiment,
            "ablation-table",
            {
                "metric": args.metric,
                "step": str(args.step),
                "best_on": args.best_on,
                "baseline": args.baseline,
                "level": args.level,
                "n_boot": args.n_boot,
                "thresholds": args.thresholds,
                "tables": written,
            },
            args.uri,
        )
        with_retry(tracker.client.log_artifacts, tracker.run_id, str(out))
        tracker.finish()
        print(f"logged {out} as the artifacts of MLflow run {tracker.run_id}")
    print(f"wrote {', '.join(written)} to {out}")
    return out


def cli() -> None:
    """``prerl-ablation-table``: a console script exits with what it calls returns, and main's is the folder."""
    main()


if __name__ == "__main__":
    cli()
