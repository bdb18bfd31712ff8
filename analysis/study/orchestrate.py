"""Running a study: the plan, each part's multirun seed by seed, the alignment (and the diagnosis), the
export and the document, in that order; a relaunch continues where the last one stopped.

Every training job's ``config_hash`` is known before launching (``analysis.study.jobs``), so the plan
says how many runs the study has, how many already finished (a relaunch skips them: ``train.py``'s
finished-run check) and about how long the rest takes.

A study that exports its runs (``StudySpec.results``: the real-model study) exports the finished runs to
files after each part, so a machine lost mid-study loses at most the part that was running; before
launching, the exported runs that the MLflow store lacks are restored into it (``analysis.study.restore``),
so a relaunch on a fresh machine, with the committed files and an empty store, skips them too; each launch
is recorded in ``launches.json`` with what it restored, finished and skipped; the document is written from
the files. A study whose evidence is its store (the mini study) logs its alignment runs there too and
writes its document from the store (``analysis.study.mini_document``).
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

from . import document, dtype, export, mini_document, progress, restore
from .jobs import Job, compose_config, distinct, part_arguments, study_jobs
from .spec import FULL, ROOT, Part, Preset, StudySpec
from .store import alignment_runs, client_for, finished_sweep_runs


@dataclass
class Launch:
    """What one launch did: its runs planned, finished by it, skipped as finished before (of them restored
    from the exported files), and not finished."""

    started: str
    preset: str
    planned: int
    skipped: int
    finished: int = 0
    missing: int = 0
    restored: int = 0
    seconds: float = 0.0
    machine: str = ""
    commit: str = ""


def finished_hashes(client, experiment: str, sweep: str) -> set[str]:
    return {r.data.tags.get("config_hash", "") for r in finished_sweep_runs(client, experiment, sweep)}


def restore_exported(client, experiment: str, runs_dir: Path, dry_run: bool) -> set[str]:
    """The config hashes of the exported runs that the store lacks, restored into it (``dry_run``: only
    listed, the store left as it is)."""
    todo = restore.pending(client, experiment, runs_dir)
    if not dry_run:
        restore.restore_all(client, experiment, todo)
    return {document["config_hash"] for _, document in todo}


def measured_run_seconds(client, experiment: str, sweep: str, runs_dir: Optional[Path]) -> tuple[Optional[float], int]:
    """The mean duration of this study's finished runs, from the store, else from its exported files."""
    runs = finished_sweep_runs(client, experiment, sweep)
    seconds = [(r.info.end_time - r.info.start_time) / 1000 for r in runs if r.info.end_time and r.info.start_time]
    if not seconds and runs_dir is not None and runs_dir.exists():
        seconds = [s for d in export.load_documents(runs_dir) if (s := export.duration_s(d))]
    return (sum(seconds) / len(seconds), len(seconds)) if seconds else (None, 0)


def plan_text(
    study: StudySpec,
    preset: Preset,
    jobs: list[Job],
    done: set[str],
    per_run: Optional[float],
    source: str,
    restored: set[str] = frozenset(),
    dry_run: bool = False,
) -> str:
    """``done``: the finished runs' config hashes, ``restored`` those of them restored from the exported
    files (``dry_run``: to be restored by ``run``)."""
    runs = distinct(jobs)
    todo = [j for j in runs if j.config_hash not in done]
    lines = [f"study {study.name}, preset {preset.name} (MLflow experiment {study.experiment_of(preset.name)}):"]
    for part in study.sweep_parts():
        own = [j for j in jobs if j.part == part.key]
        new = {j.config_hash for j in own} - {j.config_hash for j in jobs[: jobs.index(own[0])]} if own else set()
        lines.append(
            f"  ({part.key}) {part.sweep}: {len(own)} jobs, {preset.seeds[part.key]} seed(s) each cell, "
            f"{len(new)} not shared with an earlier part"
        )
    from_files = len({j.config_hash for j in runs} & restored)
    restoring = f" ({from_files} of them {'to be restored' if dry_run else 'restored'} from the exported files)"
    lines.append(
        f"  {len(runs)} distinct runs ({len(jobs) - len(runs)} jobs share a cell with an earlier part), "
        f"{len(runs) - len(todo)} already finished{restoring if study.exports else ''}, {len(todo)} to run"
    )
    if per_run is None:
        lines.append("  estimated wall time: unknown (no finished run to time; pass --run-seconds)")
    else:
        lines.append(
            f"  estimated wall time: {len(todo)} x {per_run:,.0f} s = {len(todo) * per_run / 3600:.2f} h "
            f"(per-run time {source}), plus the alignment{' and the diagnosis' if preset.diagnostics else ''}"
        )
    return "\n".join(lines)


def env() -> dict[str, str]:
    """The subprocesses import this checkout's ``prerl`` and ``analysis`` first."""
    path = os.environ.get("PYTHONPATH", "")
    return {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{path}" if path else str(ROOT)}


def call(cmd: list[str], more_env: Optional[dict[str, str]] = None) -> int:
    """Run in the caller's folder, as ``train.py`` run by hand would: Hydra's ``multirun/`` goes there."""
    print("$ " + " ".join(shlex.quote(c) for c in cmd), flush=True)
    return subprocess.call(cmd, env={**env(), **(more_env or {})})


def dsrl_steps(jobs: list[Job]) -> Optional[int]:
    """DSRL's S: the warm-up length of the NSR-RL control, which runs at DSRL's S (as the mini study reads it)."""
    control = next((j for j in jobs if "objective=nsr_rl" in j.overrides), None)
    return int(compose_config(list(control.overrides)).warmup_steps) if control else None


def seed_major(study: StudySpec, preset: Preset) -> list[tuple[int, Part]]:
    """The order of the multiruns: seed 0 of every part, then seed 1 of every part that has one, and so
    on, so that a study stopped part-way has every cell at about the same number of seeds, not all the
    seeds of the first parts and none of the last."""
    parts = study.sweep_parts()
    return [(s, p) for s in range(max(preset.seeds[p.key] for p in parts)) for p in parts if s < preset.seeds[p.key]]


def run_alignment(preset: Preset, job: Job, folder: Path, cache_dir: Optional[str]) -> int:
    """The base model's gradient alignment on the model, task, temperature and length of the study's jobs."""
    out = folder / document.ALIGNMENT
    if (out / "alignment.json").exists():
        print(f"alignment: done already ({out / 'alignment.json'}; delete it to redo)")
        return 0
    cfg = compose_config(list(job.overrides), hydra=True)
    picked = cfg.hydra.runtime.choices
    cmd = [
        sys.executable,
        "-m",
        "analysis.alignment",
        "--model",
        str(picked.model),
        "--data",
        str(picked.data),
        "--set",
        "test",
        "--temperature",
        str(cfg.rollout.temperature),
        "--max-new-tokens",
        str(cfg.rollout.max_new_tokens),
        *preset.alignment,
        "--out",
        str(out),
    ]
    return call(cmd + (["--cache-dir", cache_dir] if cache_dir else []))


def run_logged_alignments(
    client, study: StudySpec, preset: Preset, uri: Optional[str], cache_dir: Optional[str]
) -> int:
    """Each of the preset's base models' gradient alignment, logged to the study's experiment as the run
    ``alignment <model>`` (a model whose alignment run finished there already is skipped)."""
    experiment = study.experiment_of(preset.name)
    done = {r.data.params.get("model") for r in alignment_runs(client, experiment)}
    for model in preset.alignment_models:
        if model in done:
            print(f"alignment {model}: done already (experiment {experiment}; delete its run to redo)")
            continue
        cmd = [sys.executable, "-m", "analysis.alignment", "--model", model, *preset.alignment, "--mlflow"]
        cmd += ["--experiment", experiment, "--out", f"outputs/analysis/alignment/{experiment}-{model}"]
        status = call(
            cmd + (["--cache-dir", cache_dir] if cache_dir else []), {"MLFLOW_TRACKING_URI": uri} if uri else {}
        )
        if status:
            return status
    return 0


def run_diagnosis(preset: Preset, folder: Path, cache_dir: Optional[str]) -> int:
    out = folder / document.DIAGNOSIS
    if out.exists():
        print(f"diagnosis: done already ({out}; delete it to redo)")
        return 0
    out.parent.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "analysis.nsr_diagnostics", *preset.diagnostics, "--out", str(out)]
    cmd += [*preset.diagnostics_overrides, *([f"cache_dir={cache_dir}"] if cache_dir else [])]
    return call(cmd)


def machine() -> tuple[str, str]:
    from prerl.tracking.fingerprint import cpu_model
    from prerl.tracking.run_info import git

    return f"{cpu_model()}, {os.cpu_count()} cores", git("rev-parse", "HEAD") or ""


def record_launch(folder: Path, launch: Launch) -> None:
    path = folder / document.LAUNCHES
    launches = json.loads(path.read_text()) if path.exists() else []
    path.write_text(json.dumps([*launches, asdict(launch)], indent=1) + "\n")


def write_plan(folder: Path, study: StudySpec, preset: Preset, jobs: list[Job], runs: set[str]) -> None:
    """``study.json``: what the document needs of the design before any run is read."""
    plan = {
        "study": study.name,
        "preset": preset.name,
        "experiment": study.experiment_of(preset.name),
        "dsrl_steps": dsrl_steps(jobs),
        "total_steps": int(compose_config(list(jobs[0].overrides)).total_steps),
        "seeds": preset.seeds,
        "runs": len(runs),
    }
    folder.mkdir(parents=True, exist_ok=True)
    (folder / document.PLAN).write_text(json.dumps(plan, indent=1) + "\n")


def launch_parts(
    client,
    study: StudySpec,
    preset: Preset,
    extra: tuple[str, ...],
    launcher: tuple[str, ...],
    runs_dir: Optional[Path],
    planned: int,
) -> int:
    """Each part's multirun, seed by seed (``seed_major``), exporting the finished runs after each when
    ``runs_dir`` is given (the full study's also into its progress table on docs/studies.md, of ``planned``
    runs); stops at the first that fails. The exit status."""
    experiment = study.experiment_of(preset.name)
    for seed, part in seed_major(study, preset):
        arguments = part_arguments(study, preset, part, extra, seed)
        status = call([sys.executable, str(ROOT / "train.py"), "-m", *arguments, *launcher])
        if runs_dir is not None:
            export.export_runs(client, experiment, study.sweep_dir, runs_dir)
            if preset.name == FULL:
                progress.write(study.name, runs_dir, planned)
        if status:
            print(f"part ({part.key}), seed {seed} failed (exit {status}); a relaunch continues from here", flush=True)
            return status
    return 0


def run(
    study: StudySpec,
    preset: Preset,
    extra: tuple[str, ...] = (),
    launcher: tuple[str, ...] = (),
    uri: Optional[str] = None,
    cache_dir: Optional[str] = None,
    run_seconds: Optional[float] = None,
    dry_run: bool = False,
    results: Optional[Path] = None,
) -> int:
    """Plan, launch every part, align (and diagnose), export and write the document (an exporting study's
    into ``results``, default the preset's folder); the exit status."""
    start = time.time()
    extra = (*extra, *([f"cache_dir={cache_dir}"] if cache_dir else []), *([f"tracking.uri={uri}"] if uri else []))
    experiment = study.experiment_of(preset.name)
    folder = (Path(results) if results else study.results_dir(preset.name)) if study.exports else None
    runs_dir = folder / "runs" if folder else None
    jobs = study_jobs(study, preset, extra)
    if runs_dir is not None and runs_dir.exists():
        config = compose_config(list(jobs[0].overrides))
        refused = dtype.mismatch(
            dtype.machine_dtype(config), dtype.exported_dtypes(export.load_documents(runs_dir)), config.model.autocast
        )
        if refused:
            raise SystemExit(refused)
    client = client_for(uri)
    restored = restore_exported(client, experiment, runs_dir, dry_run) if runs_dir else set()
    before = finished_hashes(client, experiment, study.sweep_dir) | restored
    measured, n = measured_run_seconds(client, experiment, study.sweep_dir, runs_dir)
    per_run, source = (run_seconds, "given") if run_seconds else (measured, f"measured on {n} earlier runs")
    print(plan_text(study, preset, jobs, before, per_run, source, restored, dry_run), flush=True)
    if dry_run:
        return 0
    runs = {j.config_hash for j in distinct(jobs)}
    if folder:
        write_plan(folder, study, preset, jobs, runs)
    where, commit = machine()
    launch = Launch(
        time.strftime("%Y-%m-%d %H:%M"),
        preset.name,
        len(runs),
        len(runs & before),
        restored=len(runs & restored),
        machine=where,
        commit=commit,
    )
    status = launch_parts(client, study, preset, extra, launcher, runs_dir, len(runs))
    if status == 0 and folder:
        status = run_alignment(preset, jobs[0], folder, cache_dir) or run_diagnosis(preset, folder, cache_dir)
    elif status == 0:
        status = run_logged_alignments(client, study, preset, uri, cache_dir)
    after = finished_hashes(client, experiment, study.sweep_dir)
    launch.finished, launch.missing = len(runs & (after - before)), len(runs - after)
    launch.seconds = time.time() - start
    if folder:
        record_launch(folder, launch)
    if status == 0 and folder:
        doc = document.write(study, preset.name, folder, folder / Path(study.doc).name if results else None)
        print(f"wrote {doc}")
    elif status == 0:
        print(f"wrote {mini_document.write(study, preset.name, uri)}")
    print(
        f"this launch finished {launch.finished} run(s) and skipped {launch.skipped} already finished"
        + (f" ({launch.restored} restored from the exported files)" if folder else "")
        + f"; {launch.missing} of {launch.planned} not finished; {launch.seconds / 60:.1f} min",
        flush=True,
    )
    return status
