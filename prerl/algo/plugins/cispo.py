"""CISPO, Clipped IS-weight Policy Optimization (MiniMax-M1, Chen et al., 2025, arXiv:2506.13585).

PPO's clip drops a token's gradient once its ratio leaves the range; CISPO keeps every token and
clips the importance weight instead, as a constant: ``loss_t = −sg(clip(r_t, 1−ε_low, 1+ε_high)) ·
A_t · log π(y_t)``. Its gradient is the clipped weight times REINFORCE's, so at ratio 1 (on-policy)
it is exactly the policy gradient. The paper sets no lower bound (ε_low = 1) and tunes ε_high.
"""

from torch import Tensor

from prerl.algo.losses import CLIP_STATS, check_clip_ratios, register_policy_loss


@register_policy_loss("cispo", CLIP_STATS, check=check_clip_ratios)
def cispo_loss(logp: Tensor, old_logp: Tensor, adv: Tensor, mask: Tensor, cfg) -> tuple[Tensor, dict]:
    log_ratio = (logp - old_logp).clamp(-20.0, 20.0).detach()
    ratio = log_ratio.exp()
    weight = ratio.clamp(1 - cfg.clip_ratio_low, 1 + cfg.clip_ratio_high)
    n = mask.sum().clamp(min=1)
    share = lambda hit: (hit.float() * mask).sum() / n  # noqa: E731 - share of the masked tokens
    upper, lower = ratio > 1 + cfg.clip_ratio_high, ratio < 1 - cfg.clip_ratio_low
    stats = {
        "clip_frac": share(upper | lower),  # tokens whose weight is clipped (their gradient is kept)
        "clip_frac_upper": share(upper),
        "clip_frac_lower": share(lower),
        "approx_kl": (0.5 * log_ratio**2 * mask).sum() / n,
    }
    return -weight * adv * logp, stats
