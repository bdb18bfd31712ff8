"""A parent MLflow run per multirun (a sweep, a ``+sweep=NAME`` table, an Optuna study), its jobs nested.

Hydra calls this callback (``hydra.callbacks.mlflow_sweep`` in ``conf/config.yaml``) in the launching
process only: ``on_multirun_start`` opens the parent run with the command's overrides and writes its id
to ``<sweep dir>/mlflow_parent.json``, where every job finds it whatever launcher ran it (joblib
processes, submitit, SLURM nodes sharing the folder) and tags itself ``mlflow.parentRunId``.
``on_multirun_end`` records the summary: jobs finished and failed, the best job by ``run_info.sweep_metric``
(the final Avg@K of the first eval set, what the sweepers maximise) and, for an Optuna study, its
``optimization_results.yaml``. A launch that dies in between leaves the parent FAILED.
"""

from __future__ import annotations

import atexit
import json
import logging
from pathlib import Path
from typing import Any, Optional

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)


def swept_keys(config: DictConfig) -> dict[str, str]:
    """Key -> what the multirun sweeps over it: sweep overrides on the command line (``seed=0,1``,
    ``interval(...)``) and the sweeper's ``params`` (what ``+sweep=NAME`` and Optuna configs set)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    out = {str(k).lstrip("+~"): str(v) for k, v in (config.hydra.sweeper.get("params") or {}).items()}
    for override in OverridesParser.create().parse_overrides(list(config.hydra.overrides.task)):
        key = override.get_key_element().lstrip("+~")
        if override.is_sweep_override():
            out[key] = str(override.input_line).split("=", 1)[1]
        else:
            out.pop(key, None)  # a fixed value on the command line replaces the sweeper's list
    return out


class SweepParentRun(Callback):
    def __init__(self) -> None:
        self.run_id: Optional[str] = None
        self.client: Any = None  # an MlflowClient once the multirun starts

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        from mlflow.entities import Param

        from prerl.config.schema import TrackingConfig
        from prerl.tracking import run_info
        from prerl.tracking.tracker import Tracker, ensure_experiment, with_retry

        tracking = TrackingConfig(uri=config.tracking.uri, experiment=config.tracking.experiment)
        tracker = Tracker(tracking)  # fails within seconds, naming the URI, when the store is unreachable
        self.client, self.uri = tracker.client, tracker.uri
        sweep_dir = Path(str(config.hydra.sweep.dir))
        swept = swept_keys(config)
        sweeper = str(config.hydra.sweeper.get("_target_", "")).rsplit(".", 1)[-1]
        kind = "optuna" if "Optuna" in sweeper else "multirun"
        sweep_name = str((config.tracking.get("tags") or {}).get("sweep") or "multirun")
        label = f"optuna study {config.hydra.sweeper.study_name}" if kind == "optuna" else f"{sweep_name} sweep"
        name = f"{label}: " + " ".join(f"{k}={v}" for k, v in swept.items())
        overrides = " ".join(config.hydra.overrides.task)
        tags = {
            **run_info.source_tags(),
            "prerl_version": run_info.prerl_version(),
            "sweep_kind": kind,
            "sweep_name": sweep_name,
            "sweep_dir": str(sweep_dir),
            "launcher": str(config.hydra.launcher.get("_target_", "")).rsplit(".", 1)[-1],
            run_info.DESCRIPTION_TAG: f"python train.py -m {overrides}\n\nJobs are nested under this run; "
            f"the summary (best job by `{run_info.sweep_metric(config.eval)}`) is logged at the end.",
        }
        if kind == "optuna":
            tags |= {
                "optuna_study": str(config.hydra.sweeper.study_name),
                "optuna_storage": str(config.hydra.sweeper.storage),
            }
        experiment_id = ensure_experiment(self.client, tracking.experiment)
        run = with_retry(self.client.create_run, experiment_id, run_name=name[:250], tags=tags)
        self.run_id = run.info.run_id
        params = {"overrides": overrides or "(none)", "sweeper": sweeper, **{f"swept.{k}": v for k, v in swept.items()}}
        with_retry(self.client.log_batch, self.run_id, params=[Param(k, str(v)[:6000]) for k, v in params.items()])
        sweep_dir.mkdir(parents=True, exist_ok=True)
        (sweep_dir / run_info.PARENT_FILE).write_text(
            json.dumps(
                {"run_id": self.run_id, "uri": self.uri, "experiment": tracking.experiment, "swept": list(swept)}
            )
        )
        atexit.register(self.abandon)
        log.info("MLflow parent run %s (%s) for multirun %s", self.run_id, name, sweep_dir)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from prerl.tracking.tracker import with_retry

        if self.run_id is None:
            return
        try:
            self.summarise(config)
        finally:
            with_retry(self.client.set_terminated, self.run_id, status="FINISHED")
            atexit.unregister(self.abandon)
            self.run_id = None

    def summarise(self, config: DictConfig) -> None:
        from prerl.tracking.run_info import PARENT_TAG, sweep_metric
        from prerl.tracking.tracker import with_retry

        client, run_id = self.client, self.run_id
        experiment_id = client.get_run(run_id).info.experiment_id
        children = with_retry(
            client.search_runs, [experiment_id], filter_string=f"tags.`{PARENT_TAG}` = '{run_id}'", max_results=50000
        )
        key = sweep_metric(config.eval)
        scored = [r for r in children if r.info.status == "FINISHED" and key in r.data.metrics]
        metrics = {
            "sweep/jobs": len(children),
            "sweep/finished": sum(r.info.status == "FINISHED" for r in children),
            "sweep/failed": sum(r.info.status == "FAILED" for r in children),
        }
        if scored:
            best = max(scored, key=lambda r: r.data.metrics[key])
            metrics[f"best/{key}"] = best.data.metrics[key]
            for tag, value in (
                ("best_run_id", best.info.run_id),
                ("best_run_name", best.info.run_name),
                ("best_metric", key),
            ):
                with_retry(client.set_tag, run_id, tag, value)
        for name, value in metrics.items():
            with_retry(client.log_metric, run_id, name, float(value))
        sweep_dir = Path(str(config.hydra.sweep.dir))
        for extra in ("optimization_results.yaml", "multirun.yaml"):
            if (sweep_dir / extra).exists():
                with_retry(client.log_artifact, run_id, str(sweep_dir / extra))
        results = sweep_dir / "optimization_results.yaml"
        if results.exists():  # the Optuna sweeper's best trial
            best = OmegaConf.load(results)
            with_retry(client.log_metric, run_id, "best/optuna_value", float(best.best_value))
            with_retry(client.set_tag, run_id, "best_trial", str(best.best_trial))
        log.info("MLflow parent run %s: %s", run_id, ", ".join(f"{k} {v:g}" for k, v in metrics.items()))

    def abandon(self) -> None:
        """The launch died before on_multirun_end: the parent says so rather than staying RUNNING."""
        if self.run_id is not None and self.client is not None:
            try:
                self.client.set_terminated(self.run_id, status="FAILED")
            except Exception:  # noqa: BLE001 - exiting anyway
                pass
