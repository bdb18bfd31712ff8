"""Sweep jobs that already ran: a configuration fingerprint, and the finished MLflow run that has it.

Every run is tagged ``config_hash``: a digest of its resolved config without the keys that name
where it runs rather than what it computes (output folder, caches, tracking URI, checkpoints).
Relaunching a sweep then finds each job that already has a FINISHED run in the experiment and
returns that run's final eval instead of training again; failed or interrupted runs are redone.
"""

from __future__ import annotations

import hashlib
import json
from typing import Optional

from mlflow.entities import Run
from mlflow.tracking import MlflowClient

from prerl.config.schema import TrackingConfig
from prerl.tracking.tracker import flatten, sqlite_creation_lock, tracking_uri, with_retry

# Keys that do not change what a run computes (prefix match on the flattened config).
# ``distributed.``: replicated and sharded ranks take the same step (tests/process/distributed), and runs from
# before the key existed keep their digest.
MULTIRUN = "multirun"  # the sweep tag of a multirun launched without +sweep=NAME
NOT_IDENTITY = (
    "output_dir",
    "resume",
    "cache_dir",
    "device",
    "tracking.uri",
    "tracking.run_name",
    "tracking.skip_complete",
    "tracking.log_samples",
    "tracking.system_metrics",
    "tracking.outage_wait_s",
    "checkpoint.",
    "distributed.",
    "plan.",  # the memory plan checked at start-up (prerl/plan) changes nothing a run computes
)


# Keys added after runs were logged, with the value (as ``flatten`` writes it) that computes what those
# runs computed: left out of the digest while they hold it, so that adding a knob changes no earlier
# run's digest and a relaunched sweep still finds its finished runs (tests/unit/test_sweeps.py pins digests).
ADDED_LATER = {
    "model.gguf": "None",
    "data.system_prompt": "None",
    "rollout.batch_tokens": "131072",
    "rollout.correction.name": "none",
    "rollout.correction.cap": "2.0",
    "rollout.correction.lower": "0.0",
    "rollout.correction.upper": "3.0",
    "rollout.correction.measure": "False",
}


def config_hash(resolved: dict) -> str:
    """A short digest of what a run computes: equal for a relaunch of the same job, different otherwise."""
    identity = {
        k: v
        for k, v in flatten(resolved).items()
        if not k.startswith(NOT_IDENTITY) and not (k in ADDED_LATER and ADDED_LATER[k] == v)
    }
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]


def finished_run(cfg: TrackingConfig, digest: str) -> Optional[Run]:
    """The newest FINISHED run tagged ``config_hash=digest`` in the experiment, if any."""
    uri = tracking_uri(cfg)
    with sqlite_creation_lock(uri):  # the first connection may create the schema: parallel jobs race there
        client = MlflowClient(uri)
        experiment = with_retry(client.get_experiment_by_name, cfg.experiment)
    if experiment is None:
        return None
    runs = with_retry(
        client.search_runs,
        [experiment.experiment_id],
        filter_string=f"tags.config_hash = '{digest}' and attributes.status = 'FINISHED'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    return runs[0] if runs else None


def final_eval(run: Run) -> dict[str, float]:
    """The run's eval metrics at its last logged step (MLflow keeps the latest value of each)."""
    return {k: v for k, v in run.data.metrics.items() if k.startswith("eval/")}
