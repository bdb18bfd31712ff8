"""``python -m analysis.study {plan,run,doc,restore,export}``: a study's plan, its runs, its document, its
exported runs restored into an MLflow store, or the export of any sweep's finished runs to files (``--help``
on each)."""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path

from .spec import FULL, StudySpec


def studies() -> dict[str, StudySpec]:
    from . import smollm2

    return {smollm2.STUDY.name: smollm2.STUDY}


def study_of(name: str) -> StudySpec:
    found = studies()
    if name not in found:
        raise SystemExit(f"no study {name!r}; choose one of {sorted(found)}")
    return found[name]


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m analysis.study", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    for name, text in (
        ("plan", "print the runs, what already finished and the estimated wall time; run nothing"),
        ("run", "run every part (a relaunch continues), the alignment and the diagnosis; export; write the document"),
        ("doc", "write the document from the exported files alone"),
        ("restore", "restore the exported runs that the MLflow store lacks (run does this before launching)"),
    ):
        q = sub.add_parser(name, help=text, description=text)
        q.add_argument("--study", required=True, help="smollm2")
        q.add_argument("--preset", default=FULL, help="full (default), quick (a preview) or smoke (a pipeline check)")
        if name == "doc":
            q.add_argument("--results", type=Path, help="the folder of exported files (default: the preset's)")
            q.add_argument("--out", type=Path, help="the document (default: the preset's)")
            q.add_argument("--n-boot", type=int, default=2000)
            continue
        q.add_argument("--uri", help="MLflow tracking URI of the runs (default: $MLFLOW_TRACKING_URI or ./mlflow.db)")
        q.add_argument(
            "--results", type=Path, help="the folder of exported files and the document (default: the preset's)"
        )
        if name == "restore":
            continue
        q.add_argument("--cache-dir", help="where base models are built or cached (train.py's cache_dir)")
        q.add_argument("--run-seconds", type=float, help="seconds per run for the estimate (default: measured)")
        q.add_argument(
            "--launcher",
            default="",
            help='Hydra launcher arguments, e.g. "hydra/launcher=joblib hydra.launcher.n_jobs=2"',
        )
        q.add_argument("overrides", nargs="*", help="train.py overrides added to every job (key=value)")
    e = sub.add_parser("export", help="write a sweep's finished runs to files (any study, the mini study's too)")
    e.add_argument("--experiment", required=True)
    e.add_argument("--sweep", required=True, help="the runs' sweep tag, e.g. mini_study")
    e.add_argument("--out", type=Path, required=True, help="the folder of run files")
    e.add_argument("--uri")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    if args.command == "export":
        from .export import export_runs
        from .orchestrate import client_for

        export_runs(client_for(args.uri), args.experiment, args.sweep, args.out)
        return 0
    study = study_of(args.study)
    preset = study.preset(args.preset)
    if args.command == "doc":
        from .document import write

        print(f"wrote {write(study, preset.name, args.results, args.out, args.n_boot)}")
        return 0
    if args.command == "restore":
        from .orchestrate import client_for
        from .restore import restore_runs

        folder = (args.results or study.results_dir(preset.name)) / "runs"
        restore_runs(client_for(args.uri), study.experiment_of(preset.name), folder)
        return 0
    from .orchestrate import run

    bad = [o for o in args.overrides if "=" not in o]
    if bad:
        raise SystemExit(f"overrides must be key=value: {bad}")
    return run(
        study,
        preset,
        tuple(args.overrides),
        tuple(shlex.split(args.launcher)),
        args.uri,
        args.cache_dir,
        args.run_seconds,
        dry_run=args.command == "plan",
        results=args.results,
    )


if __name__ == "__main__":
    sys.exit(main())
