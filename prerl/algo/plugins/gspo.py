"""GSPO, Group Sequence Policy Optimization (Zheng et al., 2025, arXiv:2507.18071).

The importance ratio is the sequence's, the geometric mean of its token ratios,
``s_i = exp(mean_t(log π − log π_old))``, and the clip acts on it. Written per token in the paper's
GSPO-token form ``s_it = sg(s_i) · π(y_t) / sg(π(y_t))``: equal to ``s_i`` in value, with gradient
``s_i ∇log π(y_t)``, so that with a sequence-level advantage it is GSPO exactly. Clip ranges are
tiny (3e-4 / 4e-4) because a sequence ratio moves far less than token ratios do.
"""

import torch
from torch import Tensor

from prerl.algo.losses import CLIP_STATS, check_clip_ratios, register_policy_loss

MAX_LOG_RATIO = 10.0  # a sequence ratio above e^10 is a broken sample, not a signal


@register_policy_loss("gspo", CLIP_STATS, check=check_clip_ratios)
def gspo_loss(logp: Tensor, old_logp: Tensor, adv: Tensor, mask: Tensor, cfg) -> tuple[Tensor, dict]:
    token_log_ratio = (logp - old_logp) * mask
    seq_log_ratio = token_log_ratio.sum(-1) / mask.sum(-1).clamp(min=1)  # [B]
    log_ratio = (seq_log_ratio.detach().unsqueeze(-1) + logp - logp.detach()).clamp(max=MAX_LOG_RATIO)
    ratio = log_ratio.exp()
    unclipped = -adv * ratio
    clipped = -adv * ratio.clamp(1 - cfg.clip_ratio_low, 1 + cfg.clip_ratio_high)
    n = mask.sum().clamp(min=1)
    share = lambda hit: (hit.float() * mask).sum() / n  # noqa: E731 - share of the masked tokens
    stats = {
        "clip_frac": share(clipped > unclipped),
        "clip_frac_upper": share((adv > 0) & (ratio > 1 + cfg.clip_ratio_high)),
        "clip_frac_lower": share((adv < 0) & (ratio < 1 - cfg.clip_ratio_low)),
        "approx_kl": (0.5 * token_log_ratio.detach() ** 2).sum() / n,  # old -> new per token (k2)
    }
    return torch.maximum(unclipped, clipped), stats
