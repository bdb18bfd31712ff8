"""Faults in runs of the micro model: NaN losses skip updates and stop the run, and an unreachable
tracking store fails before any model loads."""

import pytest
import torch
from helpers import compose_config, reward_training_with, to_run
from mlflow.tracking import MlflowClient

import prerl.algo.losses as losses
import prerl.train.trainer as trainer


def test_nan_loss_skips_updates_and_stops_the_run(tmp_path, cache_dir, monkeypatch):
    def nan_loss(logp, old, adv, mask, cfg):
        return logp * float("nan"), {name: torch.tensor(0.0) for name in losses.POLICY_LOSS_STATS["clipped"]}

    monkeypatch.setitem(losses.POLICY_LOSSES, "clipped", nan_loss)
    reward_training_with(monkeypatch, lambda r, g: [float(i % 2) for i in range(len(r))])
    cfg, resolved = to_run(
        compose_config(["warmup_steps=0", "total_steps=6", "optim.max_nonfinite_updates=2"], tmp_path, cache_dir)
    )
    with pytest.raises(RuntimeError, match="3 updates in a row had a NaN/inf"):
        trainer.train(cfg, resolved)
    client = MlflowClient(cfg.tracking.uri)
    (run,) = client.search_runs([client.get_experiment_by_name("prerl-smoke").experiment_id])
    assert run.info.status == "FAILED"
    skipped = [m.value for m in client.get_metric_history(run.info.run_id, "train/skipped_update")]
    assert skipped == [1.0, 1.0]  # the third is raised before it is logged


def test_unreachable_tracking_store_fails_before_any_model_loads(tmp_path, cache_dir, monkeypatch):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    cfg, resolved = to_run(compose_config([], tmp_path, cache_dir))
    cfg.tracking.uri = "http://127.0.0.1:9"
    monkeypatch.setattr(trainer, "load_policy", lambda *a: pytest.fail("model loaded before the store check"))
    with pytest.raises(RuntimeError, match="unreachable"):
        trainer.train(cfg, resolved)
