"""Finished runs as files: what a study's document needs of each run, out of the MLflow store that stays on
one machine and into ``<results>/runs/<name>.json`` that the repository keeps.

One file per run: its resolved config (``config.json``) and flattened params, ``config_hash``, tags (the
machine's ``repro.*``, the commit ``mlflow.source.git.commit``), start and end, every ``eval/``,
``train/`` and ``cost/`` metric's history, and every per-problem result (``per_problem/*.json``). The
file is named by the run's name and config hash, so a relaunch that finds a run already exported leaves
it as it is. ``load_records`` turns the files back into the ``RunRecord``s every table computes on, and
``analysis.study.restore`` turns them back into MLflow runs on another machine: a restored run is known
here by the run id of the file it came from (``ORIGINAL_RUN_ID``), so it is never exported twice.

    python -m analysis.study export --experiment mini-study --sweep mini_study --out results/studies/mini/runs
"""

from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path
from typing import Any, Callable, Optional

from prerl.tracking.tracker import with_retry

from ..runs import RunRecord, experiment_runs

FORMAT = "prerl-run/1"
PREFIXES = ("eval/", "train/", "cost/")
PER_PROBLEM = "per_problem"
# The tags of a run restored from a file (analysis/study/restore.py): the file, and the run id it holds.
RESTORED_FROM, ORIGINAL_RUN_ID = "restored.from_file", "restored.original_run_id"


def file_name(run_name: str, digest: str) -> str:
    """``<run name, file-safe>-<config_hash>.json``."""
    safe = re.sub(r"[^A-Za-z0-9._=-]+", "_", run_name).strip("_")[:120] or "run"
    return f"{safe}-{digest}.json"


def run_document(
    info: dict[str, Any],
    params: dict[str, str],
    tags: dict[str, str],
    histories: dict[str, dict[int, float]],
    per_problem: dict[str, dict],
    config: Optional[dict],
) -> dict:
    """The exported file's content (pure: what ``export_run`` writes, from what it read)."""
    return {
        "format": FORMAT,
        "run_id": info["run_id"],
        "run_name": info.get("run_name", ""),
        "experiment": info.get("experiment", ""),
        "status": info.get("status", "FINISHED"),
        "start_time": info.get("start_time"),
        "end_time": info.get("end_time"),
        "config_hash": tags.get("config_hash", ""),
        "params": dict(sorted(params.items())),
        "tags": dict(sorted(tags.items())),
        "config": config,
        "metrics": {k: [[step, value] for step, value in sorted(h.items())] for k, h in sorted(histories.items())},
        "per_problem": dict(sorted(per_problem.items())),
    }


def record(document: dict) -> RunRecord:
    """The ``RunRecord`` of an exported file: params, tags, histories, and its per-problem results as the
    run's JSON artifacts."""
    per_problem = document.get("per_problem", {})
    return RunRecord(
        document["run_id"],
        document["params"],
        document["tags"],
        {k: {int(s): float(v) for s, v in pairs} for k, pairs in document["metrics"].items()},
        document.get("start_time") or 0,
        per_problem.get,
    )


def read(path: Path) -> dict:
    document = json.loads(path.read_text())
    if document.get("format") != FORMAT:
        raise SystemExit(f"{path}: not an exported run (format {document.get('format')!r}, want {FORMAT!r})")
    return document


def load_documents(folder: Path) -> list[dict]:
    """Every exported run in ``folder``, oldest first."""
    return sorted((read(p) for p in sorted(Path(folder).glob("*.json"))), key=lambda d: d.get("start_time") or 0)


def load_records(folder: Path) -> list[RunRecord]:
    return [record(d) for d in load_documents(folder)]


def duration_s(document: dict) -> Optional[float]:
    start, end = document.get("start_time"), document.get("end_time")
    return (end - start) / 1000 if start and end else None


# --- from MLflow -----------------------------------------------------------------------------------


def _artifact_json(client, run_id: str, path: str) -> Optional[dict]:
    with tempfile.TemporaryDirectory() as tmp:
        try:
            local = with_retry(client.download_artifacts, run_id, path, tmp)
        except Exception:  # noqa: BLE001 - a run without this artifact (older runs have no config.json)
            return None
        return json.loads(Path(local).read_text())


def run_identity(run) -> str:
    """The id an exported file gives the run: a restored run keeps the id of the run it was exported from."""
    return run.data.tags.get(ORIGINAL_RUN_ID) or run.info.run_id


def export_run(client, run, experiment: str) -> dict:
    """Read one MLflow run into its exported document."""
    run_id = run.info.run_id
    keys = [k for k in run.data.metrics if k.startswith(PREFIXES)]
    histories = {k: {m.step: m.value for m in with_retry(client.get_metric_history, run_id, k)} for k in keys}
    listed = with_retry(client.list_artifacts, run_id, PER_PROBLEM)
    per_problem = {f.path: _artifact_json(client, run_id, f.path) for f in listed if f.path.endswith(".json")}
    info = {
        "run_id": run_identity(run),
        "run_name": run.info.run_name or "",
        "experiment": experiment,
        "status": run.info.status,
        "start_time": run.info.start_time,
        "end_time": run.info.end_time,
    }
    config = _artifact_json(client, run_id, "config.json")
    return run_document(info, dict(run.data.params), dict(run.data.tags), histories, per_problem, config)


def export_runs(
    client, experiment: str, sweep: str, folder: Path, log: Callable[[str], None] = print
) -> dict[str, int]:
    """Write every FINISHED run tagged ``sweep=<sweep>`` of ``experiment`` that ``folder`` does not hold
    yet; returns how many were written and how many were there already."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    have = {read(p)["run_id"] for p in folder.glob("*.json")}
    runs = experiment_runs(client, experiment, f"attributes.status = 'FINISHED' and tags.sweep = '{sweep}'")
    written = 0
    for run in runs:
        if run_identity(run) in have:
            continue
        document = export_run(client, run, experiment)
        path = folder / file_name(document["run_name"], document["config_hash"] or document["run_id"][:16])
        path.write_text(json.dumps(document, indent=None, separators=(",", ":")) + "\n")
        written += 1
    log(f"exported {written} finished run(s) of {experiment} to {folder} ({len(have)} already there)")
    return {"written": written, "kept": len(have)}
