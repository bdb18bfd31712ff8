"""Policy losses, KL penalties and loss aggregation: pure tensor functions.

A policy loss maps per-token log-probs (new and old), advantages and the loss mask to a per-token
loss matrix; ``aggregate`` then reduces it with a *global* normaliser (``Normaliser``), computed
once over the whole update batch, so that splitting the batch into micro-batches for memory never
changes the gradient (the verl #3741 lesson in ``reference/algorithms.md`` §1).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch
from torch import Tensor

from prerl.config import AggMode, KLEstimator


class PolicyLoss(Protocol):
    """The contract of a registered policy loss.

    ``logp``, ``old_logp``, ``adv``, ``mask`` are [B, T] (``old_logp`` is ``logp.detach()`` on the
    on-policy path); ``cfg`` is the ``AlgorithmConfig``. Returns the per-token loss [B, T] (aggregated
    by the caller) and diagnostics: each a scalar tensor that is a mean over the ``mask``ed tokens,
    which the update averages over micro-batches and mini-batches weighted by tokens and logs as
    ``train/<name>``. The names are declared at registration (``register_policy_loss(name, stats)``):
    every rank logs the same keys, also a rank that has no sample to train on this step."""

    def __call__(self, logp: Tensor, old_logp: Tensor, adv: Tensor, mask: Tensor, cfg) -> tuple[Tensor, dict[str, Tensor]]:
        ...


POLICY_LOSSES: dict[str, PolicyLoss] = {}
POLICY_LOSS_STATS: dict[str, tuple[str, ...]] = {}  # name -> the diagnostics it returns


def register_policy_loss(name: str, stats: tuple[str, ...]):
    def deco(fn):
        POLICY_LOSSES[name], POLICY_LOSS_STATS[name] = fn, tuple(stats)
        return fn

    return deco


CLIP_STATS = ("clip_frac", "clip_frac_upper", "clip_frac_lower", "approx_kl")  # what every clipped loss here logs


@register_policy_loss("clipped", CLIP_STATS + ("dual_clip_frac",))
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


def kl_penalty(logp: Tensor, ref_logp: Tensor, estimator: KLEstimator) -> Tensor:
    """Per-token KL(π‖π_ref) estimate from samples of π (Schulman's k1, k2, k3)."""
    log_ratio = logp - ref_logp
    if estimator == KLEstimator.k1:
        return log_ratio
    if estimator == KLEstimator.k2:
        return 0.5 * log_ratio**2
    # k3 = r − 1 − log r with r = π_ref/π; clamped as verl's low_var_kl does
    kl = torch.exp(-log_ratio) - 1 + log_ratio
    return kl.clamp(-10.0, 10.0)


@dataclass(frozen=True)
class Normaliser:
    """Batch-wide denominators of every aggregation mode, computed before micro-batching."""

    tokens: float  # Σ mask over the update batch
    sequences: float  # sequences with at least one masked token
    scale: float  # constant C of seq-mean-token-sum-norm

    @staticmethod
    def of(mask: Tensor, scale: float) -> "Normaliser":
        return Normaliser(
            tokens=float(mask.sum().clamp(min=1)),
            sequences=float((mask.sum(-1) > 0).sum().clamp(min=1)),
            scale=float(scale),
        )


def aggregate(loss: Tensor, mask: Tensor, mode: str, norm: Normaliser) -> Tensor:
    """This micro-batch's share of the batch loss; shares of all micro-batches sum to the batch loss."""
    masked = loss * mask
    if mode == AggMode.token_mean:
        return masked.sum() / norm.tokens
    if mode == AggMode.seq_mean_token_sum:
        return masked.sum() / norm.sequences
    if mode == AggMode.seq_mean_token_mean:
        per_seq = masked.sum(-1) / mask.sum(-1).clamp(min=1)
        return per_seq.sum() / norm.sequences
    if mode == AggMode.seq_mean_token_sum_norm:
        return masked.sum() / (norm.sequences * norm.scale)
    raise ValueError(f"unknown loss_agg_mode {mode!r}")


def entropy_from_logits(logits: Tensor) -> Tensor:
    logp = torch.log_softmax(logits.float(), dim=-1)
    return -(logp.exp() * logp).sum(-1)


# Last: the plug-ins in prerl/algorithms/ register their losses with the registry above.
import prerl.algorithms  # noqa: E402,F401
