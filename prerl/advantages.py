"""Advantage estimators: side-effect-free functions of a batch, registered by name.

Every estimator has the same signature, ``fn(batch, cfg) -> Advantages``: ``batch`` carries the
outcome scores, group ids, response mask and (when the algorithm uses them) per-token KL to the
reference and critic values; ``cfg`` is the ``AlgorithmConfig``. Advantages come back per token
([N, T], zero outside the mask); ``returns`` is set only by estimators that train a critic.
Formulas follow ``reference/algorithms.md`` §1; the sanity vectors of §1.15 are in the tests.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import torch
from torch import Tensor

EPS = 1e-6


@dataclass
class AdvantageInputs:
    scores: Tensor  # [N] outcome reward per response
    group: Tensor  # [N] long: index of the prompt each response answers
    mask: Tensor  # [N, T] 1 on response tokens (EOS included)
    token_kl: Optional[Tensor] = None  # [N, T] log π − log π_ref, for KL-in-reward
    values: Optional[Tensor] = None  # [N, T] critic values V(s_t)


@dataclass
class Advantages:
    advantages: Tensor  # [N, T]
    returns: Optional[Tensor] = None  # [N, T] critic targets


ADVANTAGE_ESTIMATORS: dict[str, Callable[[AdvantageInputs, object], Advantages]] = {}


def register_advantage(name: str):
    def deco(fn):
        ADVANTAGE_ESTIMATORS[name] = fn
        return fn

    return deco


def group_stats(scores: Tensor, group: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Per-response group mean, unbiased group std and group size (mean 0, std 1 for singletons)."""
    n_groups = int(group.max()) + 1 if group.numel() else 0
    scores = scores.double()
    count = torch.zeros(n_groups, dtype=torch.double).index_add_(0, group, torch.ones_like(scores))
    total = torch.zeros(n_groups, dtype=torch.double).index_add_(0, group, scores)
    mean = total / count.clamp(min=1)
    sq_dev = torch.zeros(n_groups, dtype=torch.double).index_add_(0, group, (scores - mean[group]) ** 2)
    std = (sq_dev / (count - 1).clamp(min=1)).sqrt()
    single = count[group] < 2
    mean_i = torch.where(single, torch.zeros_like(scores), mean[group])
    std_i = torch.where(single, torch.ones_like(scores), std[group])
    return mean_i, std_i, count[group]


def broadcast(per_sequence: Tensor, mask: Tensor) -> Tensor:
    return per_sequence.to(mask.dtype).unsqueeze(-1) * mask


def group_mean_baseline(scores: Tensor, group: Tensor) -> Tensor:
    """r − mean_group(r): the pre-train-space advantage of DSRL's warm-up (no std)."""
    mean, _, _ = group_stats(scores, group)
    return (scores.double() - mean).to(scores.dtype)


@register_advantage("grpo")
def grpo(batch: AdvantageInputs, cfg) -> Advantages:
    """(r − mean_group) / (std_group + ε), or without the std when ``cfg.norm_adv_by_std`` is false."""
    mean, std, _ = group_stats(batch.scores, batch.group)
    adv = batch.scores.double() - mean
    if cfg.norm_adv_by_std:
        adv = adv / (std + EPS)
    return Advantages(broadcast(adv, batch.mask))
