"""Advantage estimators against the hand-computed vectors of reference/algorithms.md §1.15."""

import pytest
import torch

from prerl.advantages import ADVANTAGE_ESTIMATORS, AdvantageInputs, group_mean_baseline
from prerl.config import AlgorithmConfig


def run(name, scores, group=None, **cfg):
    scores = torch.tensor(scores, dtype=torch.float)
    group = torch.zeros(len(scores), dtype=torch.long) if group is None else torch.tensor(group)
    batch = AdvantageInputs(scores=scores, group=group, mask=torch.ones(len(scores), 3))
    return ADVANTAGE_ESTIMATORS[name](batch, AlgorithmConfig(advantage=name, **cfg)).advantages


@pytest.mark.parametrize("scores, expected", [
    ([1, 0, 0, 1], [0.866024, -0.866024, -0.866024, 0.866024]),
    ([1, 0, 0, 0], [1.499997, -0.499999, -0.499999, -0.499999]),
])
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
