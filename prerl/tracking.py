"""MLflow logging: one run per training job, parameters flattened from the resolved config.

Metrics go through ``MlflowClient.log_batch`` (one round trip per step instead of one per metric;
environment.md measured the difference). The tracking URI defaults to ``$MLFLOW_TRACKING_URI`` or
``sqlite:///<cwd>/mlflow.db`` so that ``mlflow ui`` in the project root sees every run.
"""

from __future__ import annotations

import fcntl
import os
import random
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import mlflow
from mlflow.entities import Metric, Param
from mlflow.tracking import MlflowClient

from prerl.config import TrackingConfig

DEFAULT_DB = "mlflow.db"


def tracking_uri(cfg: TrackingConfig) -> str:
    return cfg.uri or os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path.cwd() / DEFAULT_DB}"


def flatten(tree: Any, prefix: str = "") -> dict[str, str]:
    """``{"algorithm": {"kl": {"coef": 0.1}}}`` -> ``{"algorithm.kl.coef": "0.1"}``."""
    if isinstance(tree, dict):
        out: dict[str, str] = {}
        for key, value in tree.items():
            out.update(flatten(value, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: str(tree)[:6000]}


@contextmanager
def sqlite_creation_lock(uri: str):
    """Serialise the first connection to a SQLite store: MLflow creates and migrates the schema then,
    and parallel jobs racing to do that fail (alembic "expected to match one row")."""
    if not uri.startswith("sqlite:///"):
        yield
        return
    lock_path = Path(uri[len("sqlite:///"):]).with_suffix(".lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def with_retry(call, *args, attempts: int = 30, **kwargs):
    """Call an MLflow client method, retrying while another process holds the SQLite lock."""
    for attempt in range(attempts):
        try:
            return call(*args, **kwargs)
        except Exception as err:  # MLflow wraps SQLAlchemy's OperationalError variously
            transient = "locked" in str(err).lower() or "busy" in str(err).lower()
            if not transient or attempt == attempts - 1:
                raise
            time.sleep(min(0.05 * 2**attempt, 2.0) * (0.5 + random.random()))


class Tracker:
    """One MLflow run. Fails at start-up when the store is unreachable, rather than losing metrics."""

    def __init__(self, cfg: TrackingConfig):
        self.cfg = cfg
        self.uri = tracking_uri(cfg)
        self.run_id: str | None = None
        self.logged_through = -1  # steps up to here are already in the run (set when resuming)
        try:
            with sqlite_creation_lock(self.uri):
                mlflow.set_tracking_uri(self.uri)
                self.client = MlflowClient(self.uri)
                with_retry(self.client.search_experiments, max_results=1)
                with_retry(mlflow.search_experiments, max_results=1)  # the fluent API's store, too
        except Exception as err:
            raise RuntimeError(f"MLflow tracking store {self.uri} is unreachable: {err}. Start the server, fix "
                               "tracking.uri or MLFLOW_TRACKING_URI, or unset both to use ./mlflow.db") from err

    def start(self, config: dict, tags: dict[str, str], run_id: str | None = None) -> str:
        """Open a new run, or re-open ``run_id`` to continue it after the last step it holds."""
        if run_id is not None:
            self.run_id = run_id
            with_retry(self.client.update_run, run_id, status="RUNNING")
            history = with_retry(self.client.get_metric_history, run_id, "time/step_s")
            self.logged_through = max((m.step for m in history), default=0)
            return run_id
        experiment = with_retry(mlflow.set_experiment, self.cfg.experiment)
        run = with_retry(self.client.create_run, experiment.experiment_id, run_name=self.cfg.run_name,
                         tags={**self.cfg.tags, **tags})
        self.run_id = run.info.run_id
        items = list(flatten(config).items())
        for i in range(0, len(items), 100):  # MLflow caps a batch at 100 params
            with_retry(self.client.log_batch, self.run_id, params=[Param(k, v) for k, v in items[i:i + 100]])
        with_retry(self.client.log_dict, self.run_id, config, "config.json")
        return self.run_id

    def log(self, metrics: dict[str, float], step: int) -> None:
        if step <= self.logged_through:  # replayed after a resume: the run has these values already
            return
        now = int(time.time() * 1000)
        batch = [Metric(k, float(v), now, step) for k, v in metrics.items()]
        for i in range(0, len(batch), 1000):
            with_retry(self.client.log_batch, self.run_id, metrics=batch[i:i + 1000])

    def log_dict(self, data: dict, artifact: str) -> None:
        with_retry(self.client.log_dict, self.run_id, data, artifact)

    def log_table(self, rows: dict[str, list], artifact: str) -> None:
        with_retry(self.client.log_table, self.run_id, data=rows, artifact_file=artifact)

    def finish(self, status: str = "FINISHED") -> None:
        if self.run_id is not None:
            with_retry(self.client.set_terminated, self.run_id, status=status)
