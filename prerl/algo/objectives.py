"""Training objectives: which samples get gradient, with which advantage, in which space.

A ``Phase`` is everything the update step needs to know about the current objective, built by
keyword from config: the warm-up phase from the ``objective`` group (e.g. NSR-PreRL: pre-train space,
``samples: negative``, ``advantage: group_mean``), the main phase from the algorithm (post-train
space, all samples, the algorithm's estimator). ``samples`` and ``advantage`` name parts of the two
registries below, which plug-ins join (``prerl/algo/plugins/``); the loop asks the schedule for the
phase of each step and never branches on objective or algorithm names.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Protocol

import torch
from torch import Tensor

from prerl.algo.advantages import ADVANTAGE_ESTIMATORS, AdvantageInputs, Advantages, broadcast, group_mean_baseline
from prerl.algo.registry import Check, Registry, in_range
from prerl.config.enums import Space


@dataclass(frozen=True)
class Phase:
    name: str  # "warmup" or "main": a label for logs, never a branch
    space: Space
    samples: str  # a SAMPLE_SELECTIONS name
    advantage: str  # an OBJECTIVE_ADVANTAGES name
    loss_agg_mode: str  # a prerl.algo.losses.AGGREGATIONS name
    regularised: bool  # the algorithm's KL and entropy terms apply (the warm-up trains its objective alone)
    positive_weight: float = 1.0  # knob of samples=weighted
    loss_coef: float = 1.0
    mini_batches: int = 1  # optimizer steps per epoch over the step's rollout
    epochs: int = 1
    params: dict = field(default_factory=dict)  # the objective's plug-in knobs (Registry.knob)

    @property
    def reuses_rollout(self) -> bool:
        """More than one optimizer step per rollout: the samples are off-policy after the first, so the
        loss needs the behaviour policy's log-probs (computed once, before the first step)."""
        return self.mini_batches * self.epochs > 1

    @property
    def follows_algorithm(self) -> bool:
        """The phase trains with the algorithm's estimator (its KL-in-reward and critic apply)."""
        return OBJECTIVE_ADVANTAGES.flagged(self.advantage, "follows_algorithm")


def warmup_phase(obj) -> Phase:
    """The ``objective`` config as a phase: every field the two share, by keyword. As the official
    code, no KL or entropy term and one update per step."""
    shared = {f.name for f in fields(Phase)} & {f.name for f in fields(obj)} - {"name"}
    return Phase(name="warmup", regularised=False, **{key: getattr(obj, key) for key in shared})


def main_phase(algorithm) -> Phase:
    return Phase(
        name="main",
        space=Space.post,
        samples="all",
        advantage="algorithm",
        loss_agg_mode=algorithm.loss_agg_mode,
        regularised=True,
        mini_batches=algorithm.mini_batches_per_step,
        epochs=algorithm.epochs_per_step,
    )


# --- the advantage an objective trains with (``objective.advantage``) ------------------------------


class ObjectiveAdvantage(Protocol):
    """The contract of a registered objective advantage: the step's ``AdvantageInputs`` and the
    ``AlgorithmConfig`` → ``Advantages`` per token ([N, T], zero outside the mask)."""

    def __call__(self, batch: AdvantageInputs, algorithm) -> Advantages: ...


OBJECTIVE_ADVANTAGES: Registry = Registry("objective advantage")


def register_objective_advantage(name: str, follows_algorithm: bool = False, check: Check | None = None):
    """Decorator; ``follows_algorithm``: the part is the algorithm's estimator, so the algorithm's
    KL-in-reward and critic values apply to it."""
    return OBJECTIVE_ADVANTAGES.register(name, check, flags=("follows_algorithm",) if follows_algorithm else ())


@register_objective_advantage("algorithm", follows_algorithm=True)
def algorithm_advantage(batch: AdvantageInputs, algorithm) -> Advantages:
    """The main algorithm's estimator (the X-RL ablations)."""
    return ADVANTAGE_ESTIMATORS[algorithm.advantage](batch, algorithm)


@register_objective_advantage("group_mean")
def group_mean_advantage(batch: AdvantageInputs, algorithm) -> Advantages:
    """r − mean_group(r): the official DSRL pre-train-space advantage."""
    return Advantages(broadcast(group_mean_baseline(batch.scores, batch.group), batch.mask))


@register_objective_advantage("unit")
def unit_advantage(batch: AdvantageInputs, algorithm) -> Advantages:
    """+1 correct / −1 wrong (Zhu et al. 2025)."""
    return Advantages(broadcast(2 * batch.scores - 1, batch.mask))


def phase_advantages(phase: Phase, batch: AdvantageInputs, algorithm) -> Advantages:
    """The advantage the phase trains with, per token."""
    return OBJECTIVE_ADVANTAGES[phase.advantage](batch, algorithm)


# --- which samples get gradient, and how much (``objective.samples``) ----------------------------


class SampleSelection(Protocol):
    """The contract of a registered sample filter / weighting: per-token advantages [N, T], the
    response mask [N, T] and the ``Phase`` (its knobs) → (advantages [N, T], loss mask [N, T]). The
    loss mask is the response mask with the dropped samples zeroed: they leave the token-mean
    denominator, as in the official code."""

    def __call__(self, advantages: Tensor, mask: Tensor, phase: Phase) -> tuple[Tensor, Tensor]: ...


SAMPLE_SELECTIONS: Registry = Registry("sample selection")


def sequence_sign(advantages: Tensor) -> Tensor:
    """A response's advantage sign, taken from its summed token advantages (as the official code)."""
    return torch.sign(advantages.sum(-1))


def keep_rows(mask: Tensor, keep: Tensor) -> Tensor:
    return mask * keep.unsqueeze(-1).to(mask.dtype)


@SAMPLE_SELECTIONS.register("all")
def all_samples(advantages: Tensor, mask: Tensor, phase: Phase) -> tuple[Tensor, Tensor]:
    return advantages, mask


@SAMPLE_SELECTIONS.register("negative")
def negative_samples(advantages: Tensor, mask: Tensor, phase: Phase) -> tuple[Tensor, Tensor]:
    """NSR: only responses with a negative advantage."""
    return advantages, keep_rows(mask, sequence_sign(advantages) < 0)


@SAMPLE_SELECTIONS.register("positive")
def positive_samples(advantages: Tensor, mask: Tensor, phase: Phase) -> tuple[Tensor, Tensor]:
    """PSR: only responses with a positive advantage."""
    return advantages, keep_rows(mask, sequence_sign(advantages) > 0)


def check_positive_weight(obj, where: str) -> list[str]:
    return in_range(where, obj, "positive_weight", 0)


@SAMPLE_SELECTIONS.register("weighted", check=check_positive_weight)
def weighted_samples(advantages: Tensor, mask: Tensor, phase: Phase) -> tuple[Tensor, Tensor]:
    """W-REINFORCE: every sample, positive advantages scaled by λ = ``positive_weight``."""
    return torch.where(advantages > 0, advantages * phase.positive_weight, advantages), mask


def select_samples(phase: Phase, advantages: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    """The phase's (advantages, loss mask): response tokens of the samples it trains on."""
    return SAMPLE_SELECTIONS[phase.samples](advantages, mask, phase)
