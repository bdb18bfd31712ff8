"""Training objectives: which samples get gradient, with which advantage, in which space.

A ``Phase`` is everything the update step needs to know about the current objective. The warm-up
phase comes from the ``objective`` config (e.g. NSR-PreRL: pre-train space, negative samples,
``r − mean_group`` advantage); the main phase is the algorithm itself (post-train space, all
samples, the algorithm's estimator). The loop asks the schedule for the phase of each step and
never branches on objective or algorithm names.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from prerl.advantages import ADVANTAGE_ESTIMATORS, AdvantageInputs, Advantages, broadcast, group_mean_baseline
from prerl.config import AggMode, AlgorithmConfig, ObjectiveAdvantage, ObjectiveConfig, Samples, Space


@dataclass(frozen=True)
class Phase:
    name: str  # "warmup" or "main": a label for logs, never a branch
    space: Space
    samples: Samples
    advantage: ObjectiveAdvantage
    positive_weight: float
    loss_coef: float
    loss_agg_mode: str  # an AggMode value
    regularised: bool  # the algorithm's KL and entropy terms apply (the warm-up trains its objective alone)
    mini_batches: int = 1  # optimizer steps per epoch over the step's rollout
    epochs: int = 1

    @property
    def reuses_rollout(self) -> bool:
        """More than one optimizer step per rollout: the samples are off-policy after the first, so the
        loss needs the behaviour policy's log-probs (computed once, before the first step)."""
        return self.mini_batches * self.epochs > 1


def warmup_phase(obj: ObjectiveConfig) -> Phase:
    # As the official code: token-mean over the kept samples' tokens, no KL term, one update per step.
    return Phase("warmup", obj.space, obj.samples, obj.advantage, obj.positive_weight, obj.loss_coef,
                 AggMode.token_mean, regularised=False)


def main_phase(algorithm: AlgorithmConfig) -> Phase:
    return Phase("main", Space.post, Samples.all, ObjectiveAdvantage.algorithm, 1.0, 1.0,
                 algorithm.loss_agg_mode, regularised=True, mini_batches=algorithm.mini_batches_per_step,
                 epochs=algorithm.epochs_per_step)


def phase_advantages(phase: Phase, batch: AdvantageInputs, algorithm: AlgorithmConfig) -> Advantages:
    """The advantage the phase trains with, per token."""
    if phase.advantage == ObjectiveAdvantage.algorithm:
        return ADVANTAGE_ESTIMATORS[algorithm.advantage](batch, algorithm)
    if phase.advantage == ObjectiveAdvantage.group_mean:
        return Advantages(broadcast(group_mean_baseline(batch.scores, batch.group), batch.mask))
    return Advantages(broadcast(2 * batch.scores - 1, batch.mask))  # unit: +1 correct, −1 wrong


def sequence_sign(advantages: Tensor) -> Tensor:
    """A response's advantage sign, taken from its summed token advantages (as the official code)."""
    return torch.sign(advantages.sum(-1))


def sample_mask(phase: Phase, advantages: Tensor, mask: Tensor) -> Tensor:
    """The loss mask: response tokens of the samples this phase trains on (masked samples leave
    the token-mean denominator, as in the official code)."""
    sign = sequence_sign(advantages)
    keep = {
        Samples.all: torch.ones_like(sign),
        Samples.weighted: torch.ones_like(sign),
        Samples.negative: (sign < 0).to(sign.dtype),
        Samples.positive: (sign > 0).to(sign.dtype),
    }[phase.samples]
    return mask * keep.unsqueeze(-1).to(mask.dtype)


def weight_advantages(phase: Phase, advantages: Tensor) -> Tensor:
    """W-REINFORCE scales positive advantages by λ; other phases leave them as they are."""
    if phase.samples != Samples.weighted:
        return advantages
    return torch.where(advantages > 0, advantages * phase.positive_weight, advantages)
