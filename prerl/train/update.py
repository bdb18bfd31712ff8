"""The policy's optimizer steps on one rollout: mini-batches of whole prompt groups, each a
micro-batched loss → backward → clip → step."""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field
from typing import Callable, ContextManager, Optional, overload

import torch
from torch import Tensor

from prerl.algo.losses import POLICY_LOSS_STATS, POLICY_LOSSES, aggregate, kl_penalty
from prerl.algo.objectives import Phase
from prerl.config.schema import AlgorithmConfig, KLPlacement, OptimConfig
from prerl.parallel import distributed, fsdp
from prerl.train.logprobs import Sequences, context_states, lockstep_micro_batches, response_logprobs, select


@dataclass
class UpdateBatch:
    seqs: Sequences  # inputs in the phase's space
    advantages: Tensor  # [N, T]
    loss_mask: Tensor  # [N, T] response tokens of the kept samples
    ref_logp: Optional[Tensor] = None  # [N, T] reference log-probs when KL is in the loss
    old_logp: Optional[Tensor] = None  # [N, T] behaviour log-probs; None = on-policy (ratio 1)
    temperature: float = 1.0  # the responses' sampling temperature: log-probs are scored at it
    # [N, T] the rollout correction's weight of each token's policy-gradient loss (prerl/algo/rollout_correction.py,
    # detached); None = weight 1. Its mismatch metrics are logged with the step's, never read by the update.
    is_weight: Optional[Tensor] = None
    is_metrics: dict[str, float] = field(default_factory=dict)


@overload
def _rows(t: Tensor, idx: list[int], width: int) -> Tensor: ...
@overload
def _rows(t: Optional[Tensor], idx: list[int], width: int) -> Optional[Tensor]: ...
def _rows(t: Optional[Tensor], idx: list[int], width: int) -> Optional[Tensor]:
    return None if t is None else t[torch.tensor(idx), :width]


def trained_rows(batch: UpdateBatch, needs_all: bool) -> list[int]:
    """The samples whose forward can change the gradient: those the objective keeps (NSR drops the
    correct ones) and, unless a KL or entropy term sees every kept token, that have a non-zero
    advantage. A zero advantage gives a zero policy-gradient term under every policy loss here, and
    the normaliser already counts the skipped tokens, so the update is the same without their forward
    (GRPO: every group whose samples all got the same reward)."""
    kept = batch.loss_mask.sum(-1) > 0
    if not needs_all:
        kept &= (batch.advantages * batch.loss_mask).abs().sum(-1) > 0
    return kept.nonzero().squeeze(-1).tolist()


def policy_update(
    model,
    optimizer,
    batch: UpdateBatch,
    phase: Phase,
    algo: AlgorithmConfig,
    optim: OptimConfig,
    max_new_tokens: int,
    compute: Callable[[], ContextManager] = contextlib.nullcontext,
) -> dict[str, float]:
    """Accumulate the phase's loss over micro-batches with batch-wide normalisers, then step. Forwards and
    backwards run inside ``compute()`` (``models.autocast``), entered here for this step alone: autocast
    keeps the low-precision copies of the weights it made until its outermost block exits, so a block
    around several optimizer steps would forward every step after the first with the first's weights.
    The gradients are freed after the step, so that they do not hold memory through the next rollout."""
    device = next(model.parameters()).device
    norm = distributed.normaliser(batch.loss_mask, scale=algo.loss_scale_factor or max_new_tokens)  # global batch
    kl_in_loss = phase.regularised and algo.kl.placement == KLPlacement.loss
    entropy_mode = "grad" if algo.entropy_coeff > 0 and phase.regularised else "detached"
    totals = dict.fromkeys(("loss", "pg_loss", "kl_loss", "entropy") + POLICY_LOSS_STATS[algo.policy_loss], 0.0)
    n_tokens = float(batch.loss_mask.sum())
    optimizer.zero_grad(set_to_none=True)
    active = trained_rows(batch, needs_all=kl_in_loss or entropy_mode == "grad")
    trained = float(batch.loss_mask[active].sum()) if active else 0.0  # response tokens the gradient comes from
    forwarded = max(trained, 1.0)  # diagnostics average over these tokens
    # Under fsdp2 only the last backward reduce-scatters the gradients (fsdp.sync_gradients).
    with compute():
        # shared prompts: forwarded once for all micro-batches, their gradient sent back once after them
        contexts = context_states(model, batch.seqs, active or [0]) if batch.seqs.context_group is not None else None
        micro = list(lockstep_micro_batches(batch.seqs, active, optim.micro_batch_tokens, model))
        for k, (idx, mb, weight) in enumerate(micro):
            fsdp.sync_gradients(model, contexts is None and k == len(micro) - 1)
            width = mb.response_ids.shape[1]
            mask = _rows(batch.loss_mask, idx, width).to(device) * weight
            adv = _rows(batch.advantages, idx, width).to(device)
            logp, entropy = response_logprobs(model, mb, entropy_mode, batch.temperature, contexts)
            assert entropy is not None  # entropy_mode is "grad" or "detached", never "none"
            old = _rows(batch.old_logp, idx, width)
            old = logp.detach() if old is None else old.to(device)
            pg, stats = POLICY_LOSSES[algo.policy_loss](logp, old, adv, mask, algo)
            if batch.is_weight is not None:  # the sampler drew the tokens: its importance weight, per token
                pg = pg * _rows(batch.is_weight, idx, width).to(device)
            loss = aggregate(pg, mask, phase.loss_agg_mode, norm)
            totals["pg_loss"] += loss.item()
            if kl_in_loss:
                assert batch.ref_logp is not None, "the KL term in the loss needs the reference log-probs"
                kl = kl_penalty(logp, _rows(batch.ref_logp, idx, width).to(device), algo.kl.estimator)
                kl_term = aggregate(kl, mask, phase.loss_agg_mode, norm)
                loss = loss + algo.kl.coef * kl_term
                totals["kl_loss"] += kl_term.item()
            if entropy_mode == "grad":
                loss = loss - algo.entropy_coeff * aggregate(entropy, mask, phase.loss_agg_mode, norm)
            loss = phase.loss_coef * loss
            if loss.requires_grad:
                loss.backward()
            totals["loss"] += loss.item()
            for name in POLICY_LOSS_STATS[algo.policy_loss]:  # token means of the micro-batch (PolicyLoss contract)
                totals[name] += float(torch.as_tensor(stats[name]).detach()) * float(mask.sum()) / forwarded
            totals["entropy"] += float((entropy.detach() * mask).sum()) / forwarded
        fsdp.sync_gradients(model, True)
        if contexts is not None:
            contexts.backward()
    distributed.all_reduce_grads(model.parameters())  # sum over ranks (no-op in one process, or sharded)
    grad_norm = fsdp.full(torch.nn.utils.clip_grad_norm_(model.parameters(), optim.grad_clip))
    finite = math.isfinite(totals["loss"]) and bool(torch.isfinite(grad_norm))
    if finite:
        optimizer.step()  # else a NaN/inf would poison the weights and Adam's moments: skip the update
    optimizer.zero_grad(set_to_none=True)
    totals["skipped_update"] = float(not finite)
    totals["grad_norm"] = float(grad_norm)
    totals["kept_tokens"] = n_tokens
    totals["trained_tokens"] = trained
    # prompt + response tokens through forward and backward
    totals["update_tokens"] = float(batch.seqs.attention_mask[active].sum()) if active else 0.0
    return totals


def mini_batches(group: list[int], count: int, epochs: int, generator: torch.Generator) -> list[list[int]]:
    """Row indices of each optimizer step: per epoch the prompt groups in a seeded random order, split
    into ``count`` near-equal parts of whole groups (at most one group per part)."""
    rows_of: dict[int, list[int]] = {}
    for row, g in enumerate(group):
        rows_of.setdefault(g, []).append(row)
    groups = list(rows_of)
    parts = []
    for _ in range(epochs):
        order = [groups[i] for i in torch.randperm(len(groups), generator=generator).tolist()]
        n = min(count, len(groups))
        bounds = [len(order) * k // n for k in range(n + 1)]
        parts += [[r for g in order[a:b] for r in rows_of[g]] for a, b in zip(bounds, bounds[1:])]
    return parts


def subset(batch: UpdateBatch, rows: list[int]) -> UpdateBatch:
    """The rows ``rows`` of a batch, trimmed to their own longest sequence."""
    seqs = select(batch.seqs, rows)
    width = seqs.response_ids.shape[1]
    return UpdateBatch(
        seqs,
        _rows(batch.advantages, rows, width),
        _rows(batch.loss_mask, rows, width),
        _rows(batch.ref_logp, rows, width),
        _rows(batch.old_logp, rows, width),
        batch.temperature,
        _rows(batch.is_weight, rows, width),
        batch.is_metrics,
    )


# Per-step statistics that add up over optimizer steps (what the step spent); the others are averaged.
SUMMED_STATS = ("trained_tokens", "update_tokens", "skipped_update")


def merge_step_stats(per_step: list[dict[str, float]], kept_tokens: float) -> dict[str, float]:
    """One step's statistics from those of its optimizer steps."""
    keys = dict.fromkeys(k for stats in per_step for k in stats)
    merged = {k: sum(s.get(k, 0.0) for s in per_step) / (1 if k in SUMMED_STATS else len(per_step)) for k in keys}
    return merged | {"kept_tokens": kept_tokens, "optimizer_steps": float(len(per_step))}


def policy_updates(
    model,
    optimizer,
    batch: UpdateBatch,
    parts: list[list[int]],
    phase: Phase,
    algo: AlgorithmConfig,
    optim: OptimConfig,
    max_new_tokens: int,
    compute: Callable[[], ContextManager] = contextlib.nullcontext,
) -> tuple[dict[str, float], list[dict[str, float]]]:
    """One optimizer step per part of ``parts`` (``mini_batches``), each normalised over its own
    tokens as verl does per mini-batch, each in its own ``compute()`` block (``policy_update``); the
    step's merged statistics and each optimizer step's."""
    if len(parts) > 1 and batch.old_logp is None:
        raise ValueError("several optimizer steps on one rollout need the behaviour log-probs (batch.old_logp)")
    per_step = [
        policy_update(
            model,
            optimizer,
            subset(batch, rows) if len(parts) > 1 else batch,
            phase,
            algo,
            optim,
            max_new_tokens,
            compute,
        )
        for rows in parts
    ]
    return merge_step_stats(per_step, float(batch.loss_mask.sum())), per_step
