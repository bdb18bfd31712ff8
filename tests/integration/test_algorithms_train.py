"""Every baseline algorithm: real steps on the micro model, alone and after a warm-up; its loss falls on a
fixed batch; DAPO says clearly when no group has signal (the six-way multirun:
tests/process/test_algorithms_multirun.py)."""

from pathlib import Path

import pytest
from helpers import coin_grader, compose_config, reward_training_with, to_run
from mlflow.tracking import MlflowClient

import prerl.train.trainer as trainer
from prerl.algo.objectives import main_phase
from prerl.train.logprobs import score_logprobs
from prerl.train.update import policy_update

ROOT = Path(__file__).resolve().parents[2]

ALGORITHMS = sorted(p.stem for p in (ROOT / "conf" / "algorithm").glob("*.yaml"))  # a new YAML is tested too


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_algorithm_runs_as_main_phase_after_a_warmup(algorithm, tmp_path, cache_dir, monkeypatch):
    reward_training_with(monkeypatch, coin_grader)
    cfg, resolved = to_run(
        compose_config([f"algorithm={algorithm}", "warmup_steps=1", "total_steps=2"], tmp_path, cache_dir)
    )
    trainer.train(cfg, resolved)
    client = MlflowClient(cfg.tracking.uri)
    run = client.search_runs([client.get_experiment_by_name("prerl-smoke").experiment_id])[0]
    assert run.data.params["algorithm.name"] == algorithm
    assert run.data.metrics["train/warmup"] == 0.0 and "train/grad_norm" in run.data.metrics
    if algorithm == "ppo":
        assert "critic/value_loss" in run.data.metrics


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_updates_raise_the_advantage_weighted_log_likelihood_of_a_fixed_batch(
    algorithm, tmp_path, cache_dir, monkeypatch
):
    """What every policy loss here descends, whatever its value means (CISPO's is −w·A·log π, GSPO's
    is clipped after one step): Σ A·log π over the batch's tokens, which four updates must raise."""
    reward_training_with(monkeypatch, coin_grader)
    cfg, resolved = to_run(
        compose_config(
            [f"algorithm={algorithm}", "warmup_steps=0", "optim.lr=5e-4", "prompts_per_step=8"], tmp_path, cache_dir
        )
    )
    exp = trainer.Experiment(cfg, resolved)
    try:
        phase = main_phase(cfg.algorithm)
        batch, post, adv = exp.prepare(phase, exp.collect())
        assert batch.loss_mask.sum() > 0 and batch.advantages.abs().sum() > 0
        batch.old_logp = score_logprobs(exp.model, batch.seqs, cfg.optim.micro_batch_tokens)  # freeze π_old
        objective = lambda logp: float((batch.advantages * logp * batch.loss_mask).sum())  # noqa: E731
        before = objective(batch.old_logp)
        for _ in range(4):
            policy_update(exp.model, exp.optimizer, batch, phase, cfg.algorithm, cfg.optim, cfg.rollout.max_new_tokens)
        after = objective(score_logprobs(exp.model, batch.seqs, cfg.optim.micro_batch_tokens))
        assert after > before, (before, after)
        if exp.critic is not None:
            old_values = exp.critic.values(post)
            value_losses = [exp.critic.update(post, adv.returns, old_values)["critic/value_loss"] for _ in range(4)]
            assert value_losses[-1] < value_losses[0], value_losses
    finally:
        exp.tracker.finish()


def test_dapo_gives_a_clear_error_when_no_group_has_signal(tmp_path, cache_dir, monkeypatch):
    reward_training_with(monkeypatch, lambda responses, golds: [0.0] * len(responses))
    cfg, resolved = to_run(
        compose_config(
            ["algorithm=dapo", "warmup_steps=0", "total_steps=1", "algorithm.max_sampling_rounds=2"],
            tmp_path,
            cache_dir,
        )
    )
    with pytest.raises(RuntimeError, match="dynamic sampling found 0 of 4 prompts .* in 2 rounds"):
        trainer.train(cfg, resolved)
