"""Advantage estimators against the hand-computed vectors of docs/algorithms.md#sanity-vectors."""

import pytest
import torch

from prerl.algo.advantages import ADVANTAGE_ESTIMATORS, AdvantageInputs, group_mean_baseline
from prerl.config.schema import AlgorithmConfig, KLConfig


def run(name, scores, group=None, **cfg):
    scores = torch.tensor(scores, dtype=torch.float)
    group = torch.zeros(len(scores), dtype=torch.long) if group is None else torch.tensor(group)
    batch = AdvantageInputs(scores=scores, group=group, mask=torch.ones(len(scores), 3))
    return ADVANTAGE_ESTIMATORS[name](batch, AlgorithmConfig(advantage=name, **cfg)).advantages


@pytest.mark.parametrize(
    "scores, expected",
    [
        ([1, 0, 0, 1], [0.866024, -0.866024, -0.866024, 0.866024]),
        ([1, 0, 0, 0], [1.499997, -0.499999, -0.499999, -0.499999]),
    ],
)
def test_grpo_sanity_vectors(scores, expected):
    adv = run("grpo", scores)
    assert torch.allclose(adv[:, 0], torch.tensor(expected), atol=1e-5)
    assert torch.equal(adv[:, 0], adv[:, 2])  # outcome advantage is the same on every token


def test_grpo_without_std_is_group_mean_baseline():
    adv = run("grpo", [1, 0, 0, 0], norm_adv_by_std=False)
    assert torch.allclose(adv[:, 0], torch.tensor([0.75, -0.25, -0.25, -0.25]))


def test_groups_are_normalised_separately_and_uniform_groups_give_zero():
    adv = run("grpo", [1, 0, 1, 1, 0, 0], group=[0, 0, 1, 1, 2, 2])
    assert torch.allclose(adv[:, 0], torch.tensor([0.707106, -0.707106, 0, 0, 0, 0]), atol=1e-5)


def test_singleton_group_keeps_raw_score():
    adv = run("grpo", [1, 0], group=[0, 1])
    assert torch.allclose(adv[:, 0], torch.tensor([1.0, 0.0]), atol=1e-5)


def test_group_mean_baseline():
    out = group_mean_baseline(torch.tensor([1.0, 0, 0, 1, 1, 1]), torch.tensor([0, 0, 0, 0, 1, 1]))
    assert torch.allclose(out, torch.tensor([0.5, -0.5, -0.5, 0.5, 0, 0]))


@pytest.mark.parametrize(
    "scores, expected",
    [
        ([1, 0, 0, 1], [2 / 3, -2 / 3, -2 / 3, 2 / 3]),
        ([1, 0, 0, 0], [1.0, -1 / 3, -1 / 3, -1 / 3]),
    ],
)
def test_rloo_sanity_vectors(scores, expected):
    assert torch.allclose(run("rloo", scores)[:, 0], torch.tensor(expected), atol=1e-5)


@pytest.mark.parametrize("name", ["grpo", "rloo", "reinforce_pp_baseline"])
def test_equal_rewards_in_a_group_give_zero_advantage(name):
    adv = run(name, [1, 1, 1, 1, 0, 0, 0, 0], group=[0, 0, 0, 0, 1, 1, 1, 1])
    assert torch.allclose(adv, torch.zeros_like(adv))


def gae_loop(rewards, values, mask, gamma, lam):
    """Textbook GAE over each row's valid tokens, one token at a time."""
    out = torch.zeros_like(rewards)
    for i in range(rewards.shape[0]):
        idx = [t for t in range(rewards.shape[1]) if mask[i, t] > 0]
        next_v, next_a = 0.0, 0.0
        for t in reversed(idx):
            delta = rewards[i, t] + gamma * next_v - values[i, t]
            next_a = delta + gamma * lam * next_a
            next_v = values[i, t]
            out[i, t] = next_a
    return out


def gae_batch(scores, values, mask, token_kl=None, **cfg):
    batch = AdvantageInputs(
        scores=torch.tensor(scores), group=torch.arange(len(scores)), mask=mask, values=values, token_kl=token_kl
    )
    return ADVANTAGE_ESTIMATORS["gae"](batch, AlgorithmConfig(advantage="gae", **cfg))


def test_gae_with_unit_gamma_lambda_and_zero_critic_is_reward_to_go():
    mask = torch.tensor([[1.0, 1, 1, 0], [1, 1, 1, 1]])
    out = gae_batch([1.0, 0.0], torch.zeros(2, 4), mask, gamma=1.0, lam=1.0)
    assert torch.allclose(out.returns, torch.tensor([[1.0, 1, 1, 0], [0, 0, 0, 0]]))


def test_gae_matches_a_direct_loop_and_is_whitened():
    torch.manual_seed(0)
    mask = torch.tensor([[1.0, 1, 1, 1, 0], [1, 1, 0, 0, 0], [1, 1, 1, 1, 1]])
    values, kl = torch.randn(3, 5), torch.rand(3, 5)
    out = gae_batch(
        [1.0, 0.0, 1.0], values, mask, token_kl=kl, gamma=0.9, lam=0.8, kl=KLConfig(placement="reward", coef=0.1)
    )
    rewards = -0.1 * kl * mask
    rewards[0, 3] += 1.0
    rewards[2, 4] += 1.0
    expected = gae_loop(rewards, values * mask, mask, 0.9, 0.8)
    assert torch.allclose(out.returns, (expected + values) * mask, atol=1e-5)
    valid = out.advantages[mask > 0]
    assert valid.mean().abs() < 1e-5 and (valid.std() - 1).abs() < 1e-3


def test_reinforce_pp_returns_are_discounted_and_whitened():
    mask = torch.tensor([[1.0, 1, 1], [1, 1, 0]])
    batch = AdvantageInputs(scores=torch.tensor([1.0, 0.0]), group=torch.tensor([0, 1]), mask=mask)
    out = ADVANTAGE_ESTIMATORS["reinforce_pp"](batch, AlgorithmConfig(advantage="reinforce_pp", gamma=0.5))
    assert torch.allclose(out.returns, torch.tensor([[0.25, 0.5, 1.0], [0, 0, 0]]))
    valid = out.advantages[mask > 0]
    assert valid.mean().abs() < 1e-6 and (valid.std() - 1).abs() < 1e-3


def test_estimators_check_the_knobs_they_read():
    from prerl.config.schema import TrainConfig
    from prerl.launch.choices import part_errors

    def errors(**algo):
        return part_errors(TrainConfig(algorithm=AlgorithmConfig(**algo)))

    assert errors(advantage="gae", lam=1.5) == ["algorithm.lam=1.5: must be in [0, 1]"]
    assert errors(advantage="reinforce_pp", gamma=-0.5) == ["algorithm.gamma=-0.5: must be in [0, 1]"]
    assert errors(advantage="grpo", lam=1.5) == []  # GRPO reads no λ
    assert errors(advantage="vtrace") == [
        "algorithm.advantage='vtrace': choose one of ['gae', 'grpo', 'reinforce_pp', 'reinforce_pp_baseline', 'rloo']"
    ]
