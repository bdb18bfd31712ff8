"""Rollout corrections: the sampler–trainer mismatch, measured and corrected by importance weights.

An engine with its own kernels and dtype (vLLM in bf16) draws responses from π_sampler, while the
loss computes log π with the trainer's model (fp32 weights, maybe under autocast): the two differ, and
the policy gradient estimated on the sampler's draws is then biased (Yao et al., 2025, "Your Efficient
RL Framework Secretly Brings You Off-Policy RL Training", https://fengyao.notion.site/off-policy-rl;
Liu, Li et al., 2025, "When Speed Kills Stability: Demystifying RL Collapse from the Training-Inference
Mismatch", https://richardli.xyz/rl-collapse).

Three policies, as decoupled PPO separates them (Hilton, Cobbe & Schulman, 2021, "Batch size-invariance
for policy optimization", arXiv:2110.00641): the *behaviour* policy π_sampler drew the tokens and
enters only through an importance weight, a function of r_t = π_old(y_t) / π_sampler(y_t); the
*proximal* policy π_old (the trainer's log-probs before the update) anchors the policy loss's own
ratio and clip; π_θ is trained. The weight is detached and multiplies each token's policy-gradient
loss, whatever the policy loss (``prerl.algo.losses.POLICY_LOSSES``); the KL and entropy terms and the
batch-wide normaliser are left as they are (verl's ``rollout_is_weights`` and TRL's
``importance_sampling_ratio`` are applied the same way).

A correction is a registered part (``ROLLOUT_CORRECTIONS``, ``rollout.correction.name``) with the
``RolloutCorrection`` contract; ``correct`` applies the chosen one and measures the mismatch.
"""

from __future__ import annotations

import math
from typing import Protocol

import torch
from torch import Tensor

from prerl.algo.losses import kl_penalty
from prerl.algo.registry import Registry, in_range

METRIC_PREFIX = "train/rollout_is/"  # beside the policy loss's train/clip_frac: both describe the ratios of a step


class RolloutCorrection(Protocol):
    """The contract of a registered rollout correction (``rollout.correction.name``).

    ``log_ratio`` is log π_old − log π_sampler of every response token [N, T] (detached, 0 on
    padding), ``mask`` the response mask [N, T] and ``cfg`` the ``RolloutCorrectionConfig``. Returns the
    weight of each token's policy-gradient loss [N, T] and which tokens the correction changed
    (truncated or dropped) [N, T] bool: the share of those is logged as ``corrected_frac``."""

    def __call__(self, log_ratio: Tensor, mask: Tensor, cfg) -> tuple[Tensor, Tensor]: ...


ROLLOUT_CORRECTIONS: Registry = Registry("rollout correction")


@ROLLOUT_CORRECTIONS.register("none")
def no_correction(log_ratio: Tensor, mask: Tensor, cfg) -> tuple[Tensor, Tensor]:
    """Weight 1: the sampler's tokens are taken as the trainer's own (right when the sampler is the
    trainer's model in the trainer's dtype, the transformers engine's default)."""
    return torch.ones_like(log_ratio), torch.zeros_like(log_ratio, dtype=torch.bool)


def check_tis(section, where: str) -> list[str]:
    """C < 1 would shrink tokens on which the two policies agree: the weight must reach 1."""
    return in_range(where, section, "cap", 1)


@ROLLOUT_CORRECTIONS.register("tis", check=check_tis)
def truncated_is(log_ratio: Tensor, mask: Tensor, cfg) -> tuple[Tensor, Tensor]:
    """Token-level truncated importance sampling (TIS, Yao et al. 2025): w_t = min(r_t, C). Biased
    where a ratio exceeds C, with the variance bounded by C. verl: ``rollout_is="token"`` with
    ``rollout_is_threshold`` (verl/trainer/ppo/rollout_corr_helper.py); TRL: ``token_truncate``."""
    log_cap = math.log(cfg.cap)
    return log_ratio.clamp(max=log_cap).exp(), log_ratio > log_cap  # exp of the clamped log: never overflows


def check_mis(section, where: str) -> list[str]:
    """Bounds around 1, so that a sequence on which the two policies agree is kept."""
    return in_range(where, section, "lower", 0, 1) + in_range(where, section, "upper", 1)


@ROLLOUT_CORRECTIONS.register("mis", check=check_mis)
def masked_is(log_ratio: Tensor, mask: Tensor, cfg) -> tuple[Tensor, Tensor]:
    """Sequence-level masked importance sampling (Seq-MIS, Liu, Li et al. 2025): the sequence's ratio
    ρ = Π_t r_t weights every token of it while lower ≤ ρ ≤ upper, and a sequence outside the bounds
    is dropped (weight 0) rather than truncated: an outlier sample is taken as broken, not as signal.
    TRL's ``vllm_importance_sampling_mode="sequence_mask"`` (its default, bounds
    ``vllm_importance_sampling_clip_min``/``clip_max``); verl: ``rollout_is="sequence"`` with
    ``rollout_rs="seq_sum_k1"``. Dropped sequences still count in the loss's normaliser, as in TRL."""
    seq = (log_ratio * mask).sum(-1, keepdim=True)  # log ρ, [N, 1]
    low = math.log(cfg.lower) if cfg.lower > 0 else -math.inf
    high = math.log(cfg.upper)
    keep = (seq >= low) & (seq <= high)
    weight = torch.where(keep, seq.clamp(max=high).exp(), 0.0)  # clamped: an out-of-bounds ρ may overflow
    return weight.expand_as(log_ratio), (~keep).expand_as(log_ratio)


def correct(trainer_logp: Tensor, sampler_logp: Tensor, mask: Tensor, cfg) -> tuple[Tensor, dict[str, float]]:
    """The chosen correction's weight of every response token [N, T] (0 on padding, detached) and the
    step's mismatch metrics, from the trainer's log-probs before the update (π_old) and the sampler's,
    both [N, T] at the sampling temperature in post-train space."""
    log_ratio = ((trainer_logp - sampler_logp) * mask).detach()
    weight, corrected = ROLLOUT_CORRECTIONS[cfg.name](log_ratio, mask, cfg)
    weight = weight * mask
    return weight, mismatch_metrics(trainer_logp, sampler_logp, mask, weight, corrected, cfg.cap)


def mismatch_metrics(
    trainer_logp: Tensor, sampler_logp: Tensor, mask: Tensor, weight: Tensor, corrected: Tensor, cap: float
) -> dict[str, float]:
    """Over the response tokens of the step:

    - ``kl_k1``, ``kl_k3``: Schulman's estimators of KL(π_sampler ‖ π_old) on the sampler's draws
      (``prerl.algo.losses`` k1: log π_sampler − log π_old; k3: r − 1 − log r), the mean per token;
    - ``ratio_max``, ``ratio_p99``: the largest and the 99th-percentile (nearest rank) r = π_old / π_sampler;
    - ``beyond_cap_frac``: share of tokens with r > ``rollout.correction.cap`` (what TIS truncates);
    - ``corrected_frac``: share the chosen correction changed; ``weight_mean``: its mean weight."""
    on = mask.bool()
    n = max(int(on.sum()), 1)
    trainer, sampler = trainer_logp.detach()[on], sampler_logp.detach()[on]
    log_ratio = trainer - sampler
    if log_ratio.numel() == 0:  # no response token (every response empty): nothing differs
        log_ratio = torch.zeros(1)
    rank = math.ceil(0.99 * log_ratio.numel())  # nearest-rank percentile; kthvalue has no size limit
    metrics = {
        "kl_k1": float(kl_penalty(sampler, trainer, "k1").sum()) / n,
        "kl_k3": float(kl_penalty(sampler, trainer, "k3").sum()) / n,
        "ratio_max": float(log_ratio.max().exp()),
        "ratio_p99": float(log_ratio.kthvalue(rank).values.exp()),
        "beyond_cap_frac": float((log_ratio > math.log(cap)).sum()) / n,
        "corrected_frac": float((corrected & on).sum()) / n,
        "weight_mean": float(weight.detach()[on].sum()) / n,
    }
    return {METRIC_PREFIX + k: v for k, v in metrics.items()}


def padded(rows: list[list[float]], shape: tuple[int, ...]) -> Tensor:
    """Per-response values (``Rollout.sample_logprobs``) as a right-padded [N, T] fp32 tensor, the layout
    of ``Sequences.response_ids``."""
    out = torch.zeros(shape)
    for i, row in enumerate(rows):
        out[i, : len(row)] = torch.tensor(row, dtype=torch.float32)
    return out
