"""Policy losses, KL estimators and loss aggregation modes: pure tensor functions in registries.

A policy loss maps per-token log-probs (new and old), advantages and the loss mask to a per-token
loss matrix; ``aggregate`` then reduces it with a *global* normaliser (``Normaliser``), computed
once over the whole update batch, so that splitting the batch into micro-batches for memory never
changes the gradient (the lesson of verl issue #3741: ``docs/algorithms.md#loss-aggregation``). Each kind is a
``Registry`` (prerl/algo/registry.py) that plug-ins in ``prerl/algo/plugins/`` join by name.
"""

from __future__ import annotations

from typing import Protocol

import torch
from torch import Tensor

from prerl.algo.normaliser import Normaliser
from prerl.algo.registry import Check, Registry, in_range

__all__ = [
    "Normaliser",
    "PolicyLoss",
    "KLEstimator",
    "Aggregation",
    "POLICY_LOSSES",
    "POLICY_LOSS_STATS",
    "KL_ESTIMATORS",
    "AGGREGATIONS",
    "register_policy_loss",
    "kl_penalty",
    "aggregate",
]


class PolicyLoss(Protocol):
    """The contract of a registered policy loss (``algorithm.policy_loss``).

    ``logp``, ``old_logp``, ``adv``, ``mask`` are [B, T] (``old_logp`` is ``logp.detach()`` on the
    on-policy path); ``cfg`` is the ``AlgorithmConfig``. Returns the per-token loss [B, T] (aggregated
    by the caller) and diagnostics: each a scalar tensor that is a mean over the ``mask``ed tokens,
    which the update averages over micro-batches and mini-batches weighted by tokens and logs as
    ``train/<name>``. The names are declared at registration (``register_policy_loss(name, stats)``):
    every rank logs the same keys, also a rank that has no sample to train on this step."""

    def __call__(
        self, logp: Tensor, old_logp: Tensor, adv: Tensor, mask: Tensor, cfg
    ) -> tuple[Tensor, dict[str, Tensor]]: ...


class KLEstimator(Protocol):
    """The contract of a registered KL estimator (``algorithm.kl.estimator``): per-token log-probs of
    the policy and of the reference, [B, T], both at the sampled tokens → a per-token estimate of
    KL(π‖π_ref) [B, T], differentiable in ``logp`` (the caller masks and aggregates it)."""

    def __call__(self, logp: Tensor, ref_logp: Tensor) -> Tensor: ...


class Aggregation(Protocol):
    """The contract of a registered aggregation mode (``algorithm.loss_agg_mode``,
    ``objective.loss_agg_mode``): a per-token loss [B, T] and its mask [B, T] of one micro-batch → a
    scalar, this micro-batch's share of the batch loss. The shares of all micro-batches (and ranks)
    must add up to the loss of the whole batch, so a mode divides only by per-sequence quantities
    and by the batch-wide ``Normaliser``, never by a count of the micro-batch."""

    def __call__(self, loss: Tensor, mask: Tensor, norm: Normaliser) -> Tensor: ...


POLICY_LOSSES: Registry = Registry("policy loss")
POLICY_LOSS_STATS: Registry = Registry("policy loss")  # name -> the diagnostics it returns
KL_ESTIMATORS: Registry = Registry("KL estimator")
AGGREGATIONS: Registry = Registry("loss aggregation mode")


def register_policy_loss(name: str, stats: tuple[str, ...], check: Check | None = None):
    """Decorator: a ``PolicyLoss`` under ``name``, the diagnostics it returns, and its knob check."""

    def deco(fn: PolicyLoss) -> PolicyLoss:
        POLICY_LOSS_STATS[name] = tuple(stats)
        return POLICY_LOSSES.register(name, check)(fn)

    return deco


def check_clip_ratios(algo, where: str) -> list[str]:
    """The knobs of a ratio-clipping loss: 1 − clip_ratio_low ≥ 0 is the lower bound (1: none)."""
    return in_range(where, algo, "clip_ratio_low", 0, 1) + in_range(where, algo, "clip_ratio_high", 0)


def check_dual_clip(algo, where: str) -> list[str]:
    return check_clip_ratios(algo, where) + in_range(where, algo, "clip_ratio_c", 1, low_open=True)


CLIP_STATS = ("clip_frac", "clip_frac_upper", "clip_frac_lower", "approx_kl")  # what every clipped loss here logs


@register_policy_loss("clipped", CLIP_STATS + ("dual_clip_frac",), check=check_dual_clip)
def clipped_policy_loss(logp: Tensor, old_logp: Tensor, adv: Tensor, mask: Tensor, cfg) -> tuple[Tensor, dict]:
    """PPO clip with asymmetric bounds and dual-clip for negative advantages (verl ``vanilla``)."""
    log_ratio = (logp - old_logp).clamp(-20.0, 20.0)
    ratio = log_ratio.exp()
    unclipped = -adv * ratio
    clipped = -adv * ratio.clamp(1 - cfg.clip_ratio_low, 1 + cfg.clip_ratio_high)
    pessimistic = torch.maximum(unclipped, clipped)
    dual_bound = -adv * cfg.clip_ratio_c  # caps the loss of a negative advantage at ratio c
    loss = torch.where(adv < 0, torch.minimum(pessimistic, dual_bound), pessimistic)
    n = mask.sum().clamp(min=1)
    share = lambda hit: (hit.float() * mask).sum() / n  # noqa: E731 - share of the masked tokens
    stats = {
        "clip_frac": share(clipped > unclipped),  # the clipped term is the one in the loss
        "clip_frac_upper": share((adv > 0) & (ratio > 1 + cfg.clip_ratio_high)),  # clip-high acts
        "clip_frac_lower": share((adv < 0) & (ratio < 1 - cfg.clip_ratio_low)),
        "dual_clip_frac": share((adv < 0) & (dual_bound < pessimistic)),
        "approx_kl": (0.5 * log_ratio**2 * mask).sum() / n,  # old -> new (k2)
    }
    return loss, stats


# --- KL(π‖π_ref) per token, from samples of π (Schulman's k1, k2, k3) ---------------------------


@KL_ESTIMATORS.register("k1")
def kl_k1(logp: Tensor, ref_logp: Tensor) -> Tensor:
    """log π − log π_ref: unbiased, high variance, can be negative."""
    return logp - ref_logp


@KL_ESTIMATORS.register("k2")
def kl_k2(logp: Tensor, ref_logp: Tensor) -> Tensor:
    """½ (log π − log π_ref)²: biased, low variance, ≥ 0."""
    return 0.5 * (logp - ref_logp) ** 2


@KL_ESTIMATORS.register("k3")
def kl_k3(logp: Tensor, ref_logp: Tensor) -> Tensor:
    """r − 1 − log r with r = π_ref/π: unbiased and ≥ 0; clamped to ±10 as verl's low_var_kl does."""
    log_ratio = logp - ref_logp
    return (torch.exp(-log_ratio) - 1 + log_ratio).clamp(-10.0, 10.0)


def kl_penalty(logp: Tensor, ref_logp: Tensor, estimator: str) -> Tensor:
    """Per-token KL(π‖π_ref) estimate with the registered ``estimator``."""
    return KL_ESTIMATORS[estimator](logp, ref_logp)


# --- aggregation: this micro-batch's share of the batch loss -------------------------------------


@AGGREGATIONS.register("token-mean")
def token_mean(loss: Tensor, mask: Tensor, norm: Normaliser) -> Tensor:
    """Every kept token of the batch weighs alike (DAPO, verl's default)."""
    return (loss * mask).sum() / norm.tokens


@AGGREGATIONS.register("seq-mean-token-sum")
def seq_mean_token_sum(loss: Tensor, mask: Tensor, norm: Normaliser) -> Tensor:
    return (loss * mask).sum() / norm.sequences


@AGGREGATIONS.register("seq-mean-token-mean")
def seq_mean_token_mean(loss: Tensor, mask: Tensor, norm: Normaliser) -> Tensor:
    """Every sequence weighs alike: token mean per sequence, then the mean over sequences (GRPO paper)."""
    per_seq = (loss * mask).sum(-1) / mask.sum(-1).clamp(min=1)
    return per_seq.sum() / norm.sequences


def check_scale_factor(section, where: str) -> list[str]:
    if getattr(section, "loss_scale_factor", None) is None:  # null: rollout.max_new_tokens
        return []
    return in_range(where, section, "loss_scale_factor", 0, low_open=True)


@AGGREGATIONS.register("seq-mean-token-sum-norm", check=check_scale_factor)
def seq_mean_token_sum_norm(loss: Tensor, mask: Tensor, norm: Normaliser) -> Tensor:
    """Token sums over a constant C per sequence (Dr.GRPO): no length normalisation."""
    return (loss * mask).sum() / (norm.sequences * norm.scale)


def aggregate(loss: Tensor, mask: Tensor, mode: str, norm: Normaliser) -> Tensor:
    """This micro-batch's share of the batch loss; shares of all micro-batches sum to the batch loss."""
    return AGGREGATIONS[mode](loss, mask, norm)
