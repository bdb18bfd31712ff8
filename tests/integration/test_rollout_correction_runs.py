"""Rollout correction in runs of the micro model (prerl/algo/rollout_correction.py): bf16 compute logs the
mismatch every step, and a correction needs an engine that returns log-probs."""

from __future__ import annotations

import math

import pytest
from helpers import coin_grader, compose_config, reward_training_with, to_run

from prerl.algo import rollout_correction as rc
from prerl.algo.objectives import main_phase

P = rc.METRIC_PREFIX


def test_a_run_with_bf16_compute_logs_the_mismatch_every_step(tmp_path, cache_dir, monkeypatch):
    """The micro model with bf16 autocast: the rollout (plain-op decode) and the trainer (module forward)
    compute in bf16 along different paths, so the sampler is not quite the trainer. TIS is applied in
    the warm-up's pre-train space too: the weights come from post-train space, where the tokens were
    drawn."""
    from mlflow.tracking import MlflowClient

    from prerl.train import trainer

    reward_training_with(monkeypatch, coin_grader)
    overrides = ["model.autocast=bfloat16", "rollout.correction.name=tis", "warmup_steps=1", "total_steps=2"]
    cfg, resolved = to_run(compose_config(overrides, tmp_path, cache_dir))
    trainer.train(cfg, resolved)
    client = MlflowClient(cfg.tracking.uri)
    run = client.search_runs([client.get_experiment_by_name("prerl-smoke").experiment_id])[0]

    def history(key):
        return [m.value for m in client.get_metric_history(run.info.run_id, P + key)]

    assert len(history("kl_k3")) == 2 and all(v > 0 for v in history("kl_k3"))  # both steps, both spaces
    for p99, top in zip(history("ratio_p99"), history("ratio_max")):
        assert 0 < p99 <= top and math.isfinite(top)
    assert history("corrected_frac") == history("beyond_cap_frac")  # TIS truncates what exceeds the cap


def test_a_correction_needs_an_engine_that_returns_log_probs(tmp_path, cache_dir, monkeypatch):
    from prerl.train import trainer

    reward_training_with(monkeypatch, coin_grader)
    cfg, resolved = to_run(compose_config(["rollout.correction.measure=true"], tmp_path, cache_dir))
    exp = trainer.Experiment(cfg, resolved)
    try:
        experience = exp.collect()
        experience.rollout.sample_logprobs = None  # an engine that samples nothing (the oracles)
        with pytest.raises(ValueError, match="returns no log-probs of its samples"):
            exp.prepare(main_phase(cfg.algorithm), experience)
    finally:
        exp.tracker.finish()
