"""MLflow logging: one run per training job, parameters flattened from the resolved config.

Metrics go through ``MlflowClient.log_batch`` (one round trip per step instead of one per metric;
environment.md measured the difference). The tracking URI defaults to ``$MLFLOW_TRACKING_URI`` or
``sqlite:///<cwd>/mlflow.db`` so that ``mlflow ui`` in the project root sees every run.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import mlflow
from mlflow.entities import Metric
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


class Tracker:
    def __init__(self, cfg: TrackingConfig):
        self.cfg = cfg
        self.uri = tracking_uri(cfg)
        mlflow.set_tracking_uri(self.uri)
        self.client = MlflowClient(self.uri)
        self.run_id: str | None = None

    def start(self, config: dict, tags: dict[str, str], run_id: str | None = None) -> str:
        """Open a new run (or re-open ``run_id`` to resume it) and log the config."""
        if run_id is None:
            experiment = mlflow.set_experiment(self.cfg.experiment)
            run = self.client.create_run(experiment.experiment_id, run_name=self.cfg.run_name,
                                         tags={**self.cfg.tags, **tags})
            self.run_id = run.info.run_id
            params = flatten(config)
            items = list(params.items())
            for i in range(0, len(items), 100):  # MLflow caps a batch at 100 params
                self.client.log_batch(self.run_id, params=[mlflow.entities.Param(k, v) for k, v in items[i:i + 100]])
            self.client.log_dict(self.run_id, config, "config.json")
        else:
            self.run_id = run_id
            self.client.update_run(run_id, status="RUNNING")
        return self.run_id

    def log(self, metrics: dict[str, float], step: int) -> None:
        now = int(time.time() * 1000)
        batch = [Metric(k, float(v), now, step) for k, v in metrics.items()]
        for i in range(0, len(batch), 1000):
            self.client.log_batch(self.run_id, metrics=batch[i:i + 1000])

    def log_table(self, rows: dict[str, list], artifact: str) -> None:
        self.client.log_table(self.run_id, data=rows, artifact_file=artifact)

    def finish(self, status: str = "FINISHED") -> None:
        if self.run_id is not None:
            self.client.set_terminated(self.run_id, status=status)
