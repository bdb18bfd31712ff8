"""Objective phases: which samples get gradient, with which advantage, in which space."""

from pathlib import Path

import pytest
import torch
import yaml

from prerl.algo.advantages import AdvantageInputs
from prerl.algo.objectives import (
    OBJECTIVE_ADVANTAGES,
    SAMPLE_SELECTIONS,
    Phase,
    main_phase,
    phase_advantages,
    select_samples,
    warmup_phase,
)
from prerl.config.schema import AlgorithmConfig, ObjectiveConfig, Space
from prerl.train.logprobs import contexts

SCORES = torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0])
GROUP = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])
MASK = torch.ones(8, 2)
OBJECTIVES = sorted(Path(__file__).resolve().parents[2].glob("conf/objective/*.yaml"))


def phase_for(samples, advantage="group_mean", space="pre", **knobs):
    return warmup_phase(ObjectiveConfig(space=Space(space), samples=samples, advantage=advantage, **knobs))


def advantages(phase, scores=SCORES, group=GROUP, mask=MASK):
    batch = AdvantageInputs(scores=scores, group=group, mask=mask)
    return phase_advantages(phase, batch, AlgorithmConfig()).advantages


def kept(phase, adv, mask=MASK):
    return select_samples(phase, adv, mask)[1][:, 0].tolist()


def test_nsr_prerl_keeps_only_wrong_samples_of_mixed_groups_with_group_mean_advantage():
    phase = phase_for("negative")
    adv = advantages(phase)
    assert torch.allclose(adv[:, 0], torch.tensor([0.75, -0.25, -0.25, -0.25, 0, 0, 0, 0]))
    assert kept(phase, adv) == [0, 1, 1, 1, 0, 0, 0, 0]  # the all-correct group has A = 0: dropped


def test_psr_keeps_positive_and_all_keeps_everything():
    adv = advantages(phase_for("positive"))
    assert kept(phase_for("positive"), adv) == [1, 0, 0, 0, 0, 0, 0, 0]
    assert select_samples(phase_for("all"), adv, MASK)[1].sum().item() == 16


# docs/algorithms.md#sanity-vectors with ±1 rewards: (rewards, PSR, NSR, W-REINFORCE λ=0.1); None = dropped
SECTION_1_15 = [
    ([1, 0, 0, 1], [1, None, None, 1], [None, -1, -1, None], [0.1, -1, -1, 0.1]),
    ([1, 0, 0, 0], [1, None, None, None], [None, -1, -1, -1], [0.1, -1, -1, -1]),
    ([1, 1, 1, 1], [1, 1, 1, 1], [None] * 4, [0.1] * 4),
    ([0, 0, 0, 0], [None] * 4, [-1] * 4, [-1] * 4),
]


def trained(phase, rewards):
    """Each sample's advantage on its (one) token, None where the selection drops it."""
    adv = advantages(
        phase, torch.tensor(rewards, dtype=torch.float), torch.zeros(4, dtype=torch.long), torch.ones(4, 1)
    )
    adv, mask = select_samples(phase, adv, torch.ones(4, 1))
    return [round(a, 6) if m else None for a, m in zip(adv[:, 0].tolist(), mask[:, 0].tolist())]


@pytest.mark.parametrize("rewards, psr, nsr, weighted", SECTION_1_15)
def test_sample_selections_on_the_sanity_vectors(rewards, psr, nsr, weighted):
    assert trained(phase_for("positive", "unit", "post"), rewards) == psr
    assert trained(phase_for("negative", "unit", "post"), rewards) == nsr
    assert trained(phase_for("weighted", "unit", "post", positive_weight=0.1), rewards) == weighted
    assert trained(phase_for("all", "unit", "post"), rewards) == [2 * r - 1 for r in rewards]


def test_a_sample_sign_is_that_of_its_summed_token_advantages():
    adv = torch.tensor([[2.0, -1.0], [-2.0, 1.0], [1.0, -1.0]])  # sums +1, −1, 0
    mask = torch.ones(3, 2)
    assert select_samples(phase_for("positive"), adv, mask)[1].tolist() == [[1, 1], [0, 0], [0, 0]]
    assert select_samples(phase_for("negative"), adv, mask)[1].tolist() == [[0, 0], [1, 1], [0, 0]]
    weighted, mask_w = select_samples(phase_for("weighted", positive_weight=0.5), adv, mask)
    assert weighted.tolist() == [[1.0, -1.0], [-2.0, 0.5], [0.5, -1.0]] and mask_w.tolist() == mask.tolist()


def test_w_reinforce_scales_positive_unit_rewards():
    phase = phase_for("weighted", advantage="unit", space="post")
    adv, _ = select_samples(phase, advantages(phase), MASK)
    assert torch.allclose(adv[:, 0], torch.tensor([0.1, -1, -1, -1, 0.1, 0.1, 0.1, 0.1]))


def test_objective_advantages_by_hand():
    assert advantages(phase_for("all", "unit"))[:, 0].tolist() == [1, -1, -1, -1, 1, 1, 1, 1]
    assert advantages(phase_for("all", "group_mean"))[:, 1].tolist() == [0.75, -0.25, -0.25, -0.25, 0, 0, 0, 0]
    # "algorithm": GRPO's (r − 0.25) / σ with σ = sqrt(0.25) (unbiased std of [1, 0, 0, 0]), ε = 1e-6
    sigma = (3 * 0.25**2 + 0.75**2) / 3
    expected = 0.75 / (sigma**0.5 + 1e-6)
    assert advantages(phase_for("all", "algorithm"))[0, 0].item() == pytest.approx(expected, rel=1e-6)


def test_main_phase_uses_the_algorithm_estimator_in_post_space():
    phase = main_phase(AlgorithmConfig())
    assert phase.space == Space.post and phase.regularised and phase.follows_algorithm
    adv = advantages(phase)
    assert adv[0, 0].item() > 1.4 and adv[4, 0].item() == 0


@pytest.mark.parametrize("path", OBJECTIVES, ids=lambda p: p.stem)
def test_every_objective_yaml_is_a_phase_of_registered_parts(path):
    values = yaml.safe_load(path.read_text())
    phase = warmup_phase(ObjectiveConfig(**values))
    assert phase.samples in SAMPLE_SELECTIONS and phase.advantage in OBJECTIVE_ADVANTAGES
    for key, value in values.items():  # every field the phase shares with the objective, by keyword
        if key != "name" and key in Phase.__dataclass_fields__:
            assert getattr(phase, key) == value, key
    assert not phase.regularised and phase.mini_batches == phase.epochs == 1


def test_pre_train_space_context_is_the_context_token_only():
    prompts = [[5, 6, 7], [8, 9]]
    assert contexts(Space.pre, prompts, [0, 1, 1], context_id=1) == [[1], [1], [1]]
    assert contexts(Space.post, prompts, [0, 1, 1], context_id=1) == [[5, 6, 7], [8, 9], [8, 9]]
