"""Exported runs back into an MLflow store, so that a study continues on a machine that has only the
repository: ``train.py``'s finished-run skip (``prerl/tracking/completed.py``) looks a job's ``config_hash`` up in
the store, and a clean clone's store is empty, so without this a relaunch would train every run again.

Each file of ``<results>/runs/`` whose ``config_hash`` has no FINISHED run in the experiment becomes an
ordinary FINISHED run there: the file's params and tags, every metric's history at its steps, its start
and end times, and its per-problem results and ``config.json`` as artifacts, plus two tags, the file it
came from (``restored.from_file``) and the run id the file holds (``restored.original_run_id``).
``analysis.study.export`` knows a restored run by that id, so a relaunch's export writes no second file
for it; exported to another folder it gives its file back, those two tags and MLflow's own
``mlflow.runName`` (which every MLflow run carries) aside.

    python -m analysis.study restore --study smollm2 [--preset quick] [--uri sqlite:///mlflow.db]
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from mlflow.entities import Metric, Param

from prerl.tracking.tracker import ensure_experiment, with_retry

from ..runs import experiment_runs
from . import export
from .spec import ROOT

PARAMS_PER_BATCH, METRICS_PER_BATCH = 100, 1000  # MLflow's caps on one log_batch


def stored(client, experiment: str) -> tuple[set[str], set[str]]:
    """The config hashes and the run ids (``export.run_identity``) of the experiment's FINISHED runs."""
    runs = experiment_runs(client, experiment, "attributes.status = 'FINISHED'")
    return {r.data.tags.get("config_hash", "") for r in runs} - {""}, {export.run_identity(r) for r in runs}


def checked(path: Path, experiment: str) -> dict:
    document = export.read(path)
    if document.get("experiment", experiment) != experiment:
        raise SystemExit(
            f"{path}: a run of experiment {document['experiment']!r}, not {experiment!r} (another preset's folder?)"
        )
    return document


def pending(client, experiment: str, folder: Path) -> list[tuple[Path, dict]]:
    """The exported files of ``folder`` (none if it does not exist) that the store lacks: neither their
    config hash nor their run id has a FINISHED run in ``experiment`` (of files sharing a hash, the first
    by name)."""
    documents = [(p, checked(p, experiment)) for p in sorted(Path(folder).glob("*.json"))]
    hashes, ids = stored(client, experiment) if documents else (set(), set())
    todo = []
    for path, document in documents:
        digest = {document["config_hash"]} - {""}  # a run logged before config_hash existed has none
        if digest & hashes or document["run_id"] in ids:
            continue
        hashes |= digest
        ids.add(document["run_id"])
        todo.append((path, document))
    return todo


def source(path: Path) -> str:
    """The file, relative to the repository when it lies in it."""
    path = path.resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def batches(items: list, size: int) -> list[list]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def log_values(client, run_id: str, document: dict) -> None:
    """Params, then every metric at each of its steps (stamped with the run's start: files keep no times)."""
    stamp = document.get("start_time") or 0
    params = [Param(k, v) for k, v in document["params"].items()]
    metrics = [Metric(k, float(v), stamp, int(s)) for k, pairs in document["metrics"].items() for s, v in pairs]
    for chunk in batches(params, PARAMS_PER_BATCH):
        with_retry(client.log_batch, run_id, params=chunk)
    for chunk in batches(metrics, METRICS_PER_BATCH):
        with_retry(client.log_batch, run_id, metrics=chunk)


def log_files(client, run_id: str, document: dict) -> None:
    """The per-problem results and the resolved config, at the artifact paths ``export.export_run`` reads."""
    files = {**document.get("per_problem", {}), "config.json": document.get("config")}
    for artifact, data in files.items():
        if data is not None:  # a run exported without this artifact (older runs have no config.json)
            with_retry(client.log_dict, run_id, data, artifact)


def restore_run(client, experiment_id: str, path: Path, document: dict) -> str:
    """One file as a FINISHED run of the experiment; its new run id. A restore that fails midway leaves
    a FAILED run, which neither the finished-run skip nor the export reads."""
    tags = {**document["tags"], export.RESTORED_FROM: source(path), export.ORIGINAL_RUN_ID: document["run_id"]}
    run = with_retry(
        client.create_run,
        experiment_id,
        start_time=document.get("start_time"),
        tags=tags,
        run_name=document.get("run_name") or None,
    )
    run_id = run.info.run_id
    try:
        log_values(client, run_id, document)
        log_files(client, run_id, document)
    except BaseException:
        with_retry(client.set_terminated, run_id, "FAILED")
        raise
    with_retry(client.set_terminated, run_id, "FINISHED", end_time=document.get("end_time"))
    return run_id


def restore_all(client, experiment: str, todo: list[tuple[Path, dict]]) -> None:
    if todo:
        experiment_id = ensure_experiment(client, experiment)
        for path, document in todo:
            restore_run(client, experiment_id, path, document)


def restore_runs(client, experiment: str, folder: Path, log: Callable[[str], None] = print) -> int:
    """Restore every exported run of ``folder`` that ``experiment`` lacks; how many were restored."""
    todo = pending(client, experiment, folder)
    restore_all(client, experiment, todo)
    log(f"restored {len(todo)} finished run(s) from {folder} into MLflow experiment {experiment}")
    return len(todo)
