"""Advantage estimators: side-effect-free functions of a batch, in a registry (``algorithm.advantage``).

Every estimator follows ``AdvantageEstimator``; a plug-in module in ``prerl/algo/plugins/`` adds one
with ``@register_advantage(name, needs_values=..., check=...)``. Formulas and their sources:
``docs/algorithms.md#advantage-estimators``; the tests check the hand-computed vectors of
``docs/algorithms.md#sanity-vectors``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Protocol

import torch
from torch import Tensor

from prerl.algo.registry import Check, Registry, in_range

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
    values: Optional[Tensor] = None  # [N, T] the critic's values they were computed from (V_old of its clip)


class AdvantageEstimator(Protocol):
    """The contract of a registered estimator: ``batch`` carries the outcome scores, group ids,
    response mask and (when the algorithm uses them) per-token KL to the reference and critic
    values; ``cfg`` is the ``AlgorithmConfig``. Returns ``Advantages``: per token ([N, T], zero
    outside the mask), with ``returns`` set only by estimators that train a critic."""

    def __call__(self, batch: AdvantageInputs, cfg) -> Advantages: ...


ADVANTAGE_ESTIMATORS: Registry = Registry("advantage estimator")


def register_advantage(name: str, needs_values: bool = False, check: Check | None = None):
    """Decorator: an ``AdvantageEstimator`` under ``name``; ``needs_values`` asks for a critic."""
    return ADVANTAGE_ESTIMATORS.register(name, check, flags=("needs_values",) if needs_values else ())


def needs_critic(advantage: str) -> bool:
    """Whether the estimator ``advantage`` reads a critic's values (the run then builds one)."""
    return ADVANTAGE_ESTIMATORS.flagged(advantage, "needs_values")


def check_discount(algo, where: str) -> list[str]:
    return in_range(where, algo, "gamma", 0, 1)


def check_gae(algo, where: str) -> list[str]:
    return check_discount(algo, where) + in_range(where, algo, "lam", 0, 1)


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


@register_advantage("rloo")
def rloo(batch: AdvantageInputs, cfg) -> Advantages:
    """Leave-one-out baseline: r_i − mean_{j≠i} r_j = n/(n−1)·(r_i − mean_group); singletons keep r_i."""
    mean, _, count = group_stats(batch.scores, batch.group)
    scale = torch.where(count > 1, count / (count - 1).clamp(min=1), torch.ones_like(count))
    return Advantages(broadcast(scale * (batch.scores.double() - mean), batch.mask))


def masked_whiten(x: Tensor, mask: Tensor, eps: float = 1e-8) -> Tensor:
    """(x − mean) / sqrt(var + eps) over the masked entries of the whole batch (unbiased var)."""
    n = mask.sum()
    mean = (x * mask).sum() / n
    var = (((x - mean) * mask) ** 2).sum() / (n - 1).clamp(min=1)
    return (x - mean) * torch.rsqrt(var + eps) * mask


def token_rewards(batch: AdvantageInputs, cfg) -> Tensor:
    """Outcome score on each response's last token, minus β·KL per token when KL is in the reward."""
    mask = batch.mask
    last = (mask.sum(-1).long() - 1).clamp(min=0)
    rewards = torch.zeros_like(mask)
    rewards[torch.arange(mask.shape[0]), last] = batch.scores.to(mask.dtype)
    if batch.token_kl is not None:
        rewards = rewards - cfg.kl.coef * batch.token_kl
    return rewards * mask


def discounted_returns(rewards: Tensor, mask: Tensor, gamma: float) -> Tensor:
    """G_t = r_t + γ·G_{t+1} over response tokens."""
    returns = torch.zeros_like(rewards)
    running = torch.zeros(rewards.shape[0], dtype=rewards.dtype)
    for t in reversed(range(rewards.shape[1])):
        running = rewards[:, t] + gamma * running * mask[:, t]
        returns[:, t] = running
    return returns * mask


@register_advantage("reinforce_pp", check=check_discount)
def reinforce_pp(batch: AdvantageInputs, cfg) -> Advantages:
    """REINFORCE++: discounted returns of KL-shaped token rewards, whitened over the whole batch."""
    returns = discounted_returns(token_rewards(batch, cfg), batch.mask, cfg.gamma)
    return Advantages(masked_whiten(returns, batch.mask), returns)


@register_advantage("reinforce_pp_baseline")
def reinforce_pp_baseline(batch: AdvantageInputs, cfg) -> Advantages:
    """REINFORCE++-baseline: r − mean_group broadcast to tokens, then whitened over the batch."""
    centred = broadcast(group_mean_baseline(batch.scores, batch.group), batch.mask)
    return Advantages(masked_whiten(centred, batch.mask))


@register_advantage("gae", needs_values=True, check=check_gae)
def gae(batch: AdvantageInputs, cfg) -> Advantages:
    """Generalised advantage estimation on KL-shaped token rewards; returns = Â + V (before whitening)."""
    if batch.values is None:
        raise ValueError("the gae estimator needs critic values")
    rewards, values, mask = token_rewards(batch, cfg), batch.values * batch.mask, batch.mask
    adv = torch.zeros_like(rewards)
    next_value = torch.zeros(rewards.shape[0], dtype=rewards.dtype)
    next_adv = torch.zeros_like(next_value)
    for t in reversed(range(rewards.shape[1])):
        delta = rewards[:, t] + cfg.gamma * next_value - values[:, t]
        a = delta + cfg.gamma * cfg.lam * next_adv
        m = mask[:, t]
        next_value = torch.where(m > 0, values[:, t], next_value)
        next_adv = torch.where(m > 0, a, next_adv)
        adv[:, t] = a * m
    returns = (adv + values) * mask
    return Advantages(masked_whiten(adv, mask), returns)
