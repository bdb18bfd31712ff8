"""Finished sweep runs from MLflow, as plain records the tables and figures compute on.

A sweep tags its runs ``sweep=<name>`` (``sweeps/*.yaml``); a table reads the FINISHED runs of
its sweeps. Each record carries the run's flattened config (its MLflow params) and the step
history of the metrics asked for, so everything downstream is pure and testable on hand-built
records.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Callable, Iterable, Optional

from mlflow.tracking import MlflowClient

from prerl.tracking.tracker import with_retry


@dataclass
class RunRecord:
    """One finished run: its id, flattened config, tags and, per metric, value at each step."""

    run_id: str
    params: dict[str, str]
    tags: dict[str, str] = field(default_factory=dict)
    history: dict[str, dict[int, float]] = field(default_factory=dict)
    start_time: int = 0
    load_artifact: Optional[Callable[[str], Optional[dict]]] = field(default=None, repr=False, compare=False)

    def artifact(self, path: str) -> Optional[dict]:
        """A JSON artifact of the run (None: the run has none at ``path``)."""
        return self.load_artifact(path) if self.load_artifact is not None else None

    @property
    def seed(self) -> str:
        return self.params.get("seed", "?")


def sweep_filter(sweep: str) -> str:
    return f"attributes.status = 'FINISHED' and tags.sweep = '{sweep}'"  # tags have no IN in MLflow


def newest_sweep_experiment(client: MlflowClient) -> Optional[str]:
    """The experiment of the most recently started sweep run (the default for ``make ablation-table``)."""
    experiments = {e.experiment_id: e.name for e in with_retry(client.search_experiments)}
    if not experiments:
        return None
    runs = with_retry(
        client.search_runs,
        list(experiments),
        filter_string="tags.sweep != ''",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    return experiments[runs[0].info.experiment_id] if runs else None


def experiment_runs(client: MlflowClient, experiment: str, filter_string: str, **search) -> list:
    """The runs of ``experiment`` that match ``filter_string`` (none when the experiment does not exist);
    ``search``: further ``search_runs`` arguments (``order_by``, ``max_results``, default 50,000)."""
    exp = with_retry(client.get_experiment_by_name, experiment)
    if exp is None:
        return []
    search.setdefault("max_results", 50000)
    return with_retry(client.search_runs, [exp.experiment_id], filter_string=filter_string, **search)


def newest_sweep_run(client: MlflowClient, experiment: str):
    """The most recently started run of any sweep or multirun in ``experiment`` (None: there is none)."""
    runs = experiment_runs(
        client, experiment, "tags.sweep != ''", order_by=["attributes.start_time DESC"], max_results=1
    )
    return runs[0] if runs else None


def load_runs(
    client: MlflowClient,
    experiment: str,
    sweeps: Iterable[str],
    metric_prefixes: tuple[str, ...] = ("eval/", "train/", "cost/"),
) -> list[RunRecord]:
    """The FINISHED runs of ``sweeps`` in ``experiment``, with the history of every metric whose name
    starts with one of ``metric_prefixes``."""
    return _records(client, experiment, [sweep_filter(sweep) for sweep in dict.fromkeys(sweeps)], metric_prefixes)


def load_multirun(
    client: MlflowClient,
    experiment: str,
    sweep_id: str,
    metric_prefixes: tuple[str, ...] = ("eval/", "train/", "cost/"),
) -> list[RunRecord]:
    """The FINISHED jobs of one multirun (its ``sweep_id`` tag: the multirun's output folder)."""
    return _records(
        client, experiment, [f"attributes.status = 'FINISHED' and tags.sweep_id = '{sweep_id}'"], metric_prefixes
    )


def _records(client: MlflowClient, experiment: str, filters: list[str], metric_prefixes) -> list[RunRecord]:
    records = []
    runs = [run for f in filters for run in experiment_runs(client, experiment, f)]
    for run in runs:
        keys = [k for k in run.data.metrics if k.startswith(metric_prefixes)]
        history = {
            k: {m.step: m.value for m in with_retry(client.get_metric_history, run.info.run_id, k)} for k in keys
        }
        records.append(
            RunRecord(
                run.info.run_id,
                dict(run.data.params),
                dict(run.data.tags),
                history,
                run.info.start_time or 0,
                json_artifacts(client, run.info.run_id),
            )
        )
    return records


def json_artifacts(client: MlflowClient, run_id: str) -> Callable[[str], Optional[dict]]:
    """A cached reader of the run's JSON artifacts; a folder is listed once, so a missing file is None
    without a failed download."""

    @lru_cache(maxsize=None)
    def listing(folder: str) -> frozenset:
        return frozenset(f.path for f in with_retry(client.list_artifacts, run_id, folder or None))

    @lru_cache(maxsize=None)
    def load(path: str) -> Optional[dict]:
        if path not in listing(path.rsplit("/", 1)[0] if "/" in path else ""):
            return None
        with tempfile.TemporaryDirectory() as tmp:
            local = with_retry(client.download_artifacts, run_id, path, tmp)
            return json.loads(Path(local).read_text())

    return load
