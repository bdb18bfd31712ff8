"""Objective phases: which samples get gradient, with which advantage, in which space."""

import torch

from prerl.advantages import AdvantageInputs
from prerl.config import AlgorithmConfig, ObjectiveConfig, Samples, Space
from prerl.objectives import main_phase, phase_advantages, sample_mask, warmup_phase, weight_advantages
from prerl.scoring import contexts

SCORES = torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0])
GROUP = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])
MASK = torch.ones(8, 2)


def phase_for(samples, advantage="group_mean", space="pre"):
    return warmup_phase(ObjectiveConfig(space=Space(space), samples=Samples(samples), advantage=advantage))


def advantages(phase):
    batch = AdvantageInputs(scores=SCORES, group=GROUP, mask=MASK)
    return phase_advantages(phase, batch, AlgorithmConfig()).advantages


def test_nsr_prerl_keeps_only_wrong_samples_of_mixed_groups_with_group_mean_advantage():
    phase = phase_for("negative")
    adv = advantages(phase)
    assert torch.allclose(adv[:, 0], torch.tensor([0.75, -0.25, -0.25, -0.25, 0, 0, 0, 0]))
    kept = sample_mask(phase, adv, MASK)[:, 0]
    assert kept.tolist() == [0, 1, 1, 1, 0, 0, 0, 0]  # the all-correct group has A = 0: dropped


def test_psr_keeps_positive_and_all_keeps_everything():
    adv = advantages(phase_for("positive"))
    assert sample_mask(phase_for("positive"), adv, MASK)[:, 0].tolist() == [1, 0, 0, 0, 0, 0, 0, 0]
    assert sample_mask(phase_for("all"), adv, MASK).sum().item() == 16


def test_w_reinforce_scales_positive_unit_rewards():
    phase = phase_for("weighted", advantage="unit", space="post")
    adv = weight_advantages(phase, advantages(phase))
    assert torch.allclose(adv[:, 0], torch.tensor([0.1, -1, -1, -1, 0.1, 0.1, 0.1, 0.1]))


def test_main_phase_uses_the_algorithm_estimator_in_post_space():
    phase = main_phase(AlgorithmConfig())
    assert phase.space == Space.post and phase.regularised
    adv = advantages(phase)
    assert adv[0, 0].item() > 1.4 and adv[4, 0].item() == 0


def test_pre_train_space_context_is_the_context_token_only():
    prompts = [[5, 6, 7], [8, 9]]
    assert contexts(Space.pre, prompts, [0, 1, 1], context_id=1) == [[1], [1], [1]]
    assert contexts(Space.post, prompts, [0, 1, 1], context_id=1) == [[5, 6, 7], [8, 9], [8, 9]]
