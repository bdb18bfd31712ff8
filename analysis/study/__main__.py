"""``python -m analysis.study {plan,run,doc,claims,restore,export}``: a study's plan, its runs, its document,
its claims, its exported runs restored into an MLflow store, or the export of any sweep's finished runs to
files (``--help`` on each).

    python -m analysis.study run --study mini [--preset quick|smoke] [hydra/launcher=joblib ...]
    python -m analysis.study doc --study mini                     # docs/mini-study.md from ./mlflow.db
    python -m analysis.study run --study smollm2 [--preset quick|smoke]
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path

from .spec import FULL, StudySpec


def studies() -> dict[str, StudySpec]:
    from . import mini, smollm2

    return {s.name: s for s in (mini.STUDY, smollm2.STUDY)}


def study_of(name: str) -> StudySpec:
    found = studies()
    if name not in found:
        raise SystemExit(f"no study {name!r}; choose one of {sorted(found)}")
    return found[name]


def split_overrides(overrides: list[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The jobs' overrides, and Hydra's own (``hydra/launcher=joblib``, ``hydra.launcher.n_jobs=2``), which
    go to the launcher: they choose how the jobs run, never what a job computes."""
    bad = [o for o in overrides if "=" not in o]
    if bad:
        raise SystemExit(f"overrides must be key=value: {bad}")
    hydra = tuple(o for o in overrides if o.lstrip("+~").startswith(("hydra/", "hydra.")))
    return tuple(o for o in overrides if o not in hydra), hydra


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m analysis.study", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = p.add_subparsers(dest="command", required=True)
    for name, text in (
        ("plan", "print the runs, what already finished and the estimated wall time; run nothing"),
        ("run", "run every part (a relaunch continues), the alignment (and the diagnosis); write the document"),
        ("doc", "write the document from the runs already there (the store's, or the exported files)"),
        ("claims", "print the claims and what is measured for each; read nothing"),
        ("restore", "restore the exported runs that the MLflow store lacks (run does this before launching)"),
    ):
        q = sub.add_parser(name, help=text, description=text)
        q.add_argument("--study", required=True, help="mini or smollm2")
        q.add_argument("--preset", default=FULL, help="full (default), quick (a preview) or smoke (a pipeline check)")
        if name == "claims":
            continue
        q.add_argument("--uri", help="MLflow tracking URI of the runs (default: $MLFLOW_TRACKING_URI or ./mlflow.db)")
        q.add_argument(
            "--results",
            type=Path,
            help="a study that exports its runs: the folder of exported files and the document (default: the preset's)",
        )
        if name == "doc":
            q.add_argument("--out", type=Path, help="the document (default: the preset's)")
            q.add_argument("--n-boot", type=int, default=2000)
            q.add_argument("--experiment", help="a study read from its store: the experiment (default: the preset's)")
            q.add_argument("--dsrl-steps", type=int, help="DSRL's warm-up S (default: the NSR-RL control's S)")
            continue
        if name == "restore":
            continue
        q.add_argument("--cache-dir", help="where base models are built or cached (train.py's cache_dir)")
        q.add_argument("--run-seconds", type=float, help="seconds per run for the estimate (default: measured)")
        q.add_argument(
            "--launcher",
            default="",
            help='Hydra launcher arguments, e.g. "hydra/launcher=joblib hydra.launcher.n_jobs=2"',
        )
        q.add_argument(
            "overrides",
            nargs="*",
            help="train.py overrides added to every job (key=value); hydra/... and hydra.... go to the launcher",
        )
    g = sub.add_parser(
        "progress",
        help="the finished runs of the full study, from its exported files, into docs/studies.md",
    )
    g.add_argument("--study", required=True, help="a study that exports its runs (smollm2)")
    g.add_argument("--check", action="store_true", help="exit 1 if the page's block is stale; write nothing")
    e = sub.add_parser("export", help="write a sweep's finished runs to files (any study, the mini study's too)")
    e.add_argument("--experiment", required=True)
    e.add_argument("--sweep", required=True, help="the runs' sweep tag, e.g. mini_study")
    e.add_argument("--out", type=Path, required=True, help="the folder of run files")
    e.add_argument("--uri")
    return p


def document(study: StudySpec, preset: str, args: argparse.Namespace) -> Path:
    if study.exports:
        if args.experiment or args.dsrl_steps or args.uri:
            raise SystemExit(
                f"study {study.name} is written from its exported files: --results, not the store's options"
            )
        from .document import write

        return write(study, preset, args.results, args.out, args.n_boot)
    if args.results:
        raise SystemExit(
            f"study {study.name} is written from its MLflow store (--uri, --experiment): it exports nothing"
        )
    from .mini_document import write as write_from_store

    return write_from_store(study, preset, args.uri, args.experiment, args.out, args.dsrl_steps, args.n_boot)


def show_progress(study: StudySpec, check: bool) -> int:
    if not study.exports:
        raise SystemExit(f"study {study.name} keeps its runs in the MLflow store: its progress is its document")
    from .jobs import distinct, study_jobs
    from .progress import PAGE, write

    preset = study.preset(FULL)
    current = write(study.name, study.results_dir(FULL) / "runs", len(distinct(study_jobs(study, preset))), check)
    print(f"{PAGE.name}: {'up to date' if current else ('stale' if check else 'rewritten')}")
    return 1 if check and not current else 0


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    if args.command == "export":
        from .export import export_runs
        from .store import client_for

        export_runs(client_for(args.uri), args.experiment, args.sweep, args.out)
        return 0
    study = study_of(args.study)
    if args.command == "progress":
        return show_progress(study, args.check)
    preset = study.preset(args.preset)
    if args.command == "claims":
        from .sections import claims_plan

        print(claims_plan(study.claims))
        return 0
    if args.command == "doc":
        print(f"wrote {document(study, preset.name, args)}")
        return 0
    if not study.exports and args.results:
        raise SystemExit(f"study {study.name} keeps its runs in the MLflow store: it has no --results folder")
    if args.command == "restore":
        if not study.exports:
            raise SystemExit(f"study {study.name} exports nothing to restore: its runs are in the MLflow store")
        from .restore import restore_runs
        from .store import client_for

        folder = (args.results or study.results_dir(preset.name)) / "runs"
        restore_runs(client_for(args.uri), study.experiment_of(preset.name), folder)
        return 0
    from .orchestrate import run

    overrides, hydra = split_overrides(args.overrides)
    return run(
        study,
        preset,
        overrides,
        (*shlex.split(args.launcher), *hydra),
        args.uri,
        args.cache_dir,
        args.run_seconds,
        dry_run=args.command == "plan",
        results=args.results,
    )


if __name__ == "__main__":
    sys.exit(main())
