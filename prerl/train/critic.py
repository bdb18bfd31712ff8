"""PPO's critic: a separate value model — a copy of the policy's trunk with a scalar head.

A separate model (as verl's critic worker) rather than a head on the shared trunk keeps the
policy's gradient free of the value loss and lets the critic have its own learning rate. It is
initialised from the policy at the start of the run; the head starts at zero, so the first
advantages are plain reward-to-go.
"""

from __future__ import annotations

import contextlib
import copy
from typing import Callable, ContextManager

import torch
from torch import Tensor, nn

from prerl.algo.losses import aggregate
from prerl.config.schema import CriticConfig, OptimConfig
from prerl.parallel import distributed, fsdp
from prerl.train.logprobs import Sequences, at_responses, lockstep_micro_batches, per_response_token, select, whole_rows


class ValueModel(nn.Module):
    def __init__(self, policy):
        super().__init__()
        self.trunk = copy.deepcopy(policy.base_model)  # the transformer without the LM head
        self.head = nn.Linear(policy.config.hidden_size, 1)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)
        self.to(next(policy.parameters()).device)

    def forward(self, seqs: Sequences) -> Tensor:
        """V(s_t) for each response token t: the value of the state that generates it, [B, T]."""
        device = self.head.weight.device
        hidden = self.trunk(
            input_ids=seqs.input_ids.to(device), attention_mask=seqs.attention_mask.to(device), use_cache=False
        ).last_hidden_state
        return at_responses(self.head(hidden).squeeze(-1).float(), seqs)


class Critic:
    """``compute`` is the context of the value model's forwards and backwards in ``update`` (``models.autocast``),
    entered once per optimizer step, as the policy's (``update.policy_update`` says why)."""

    def __init__(
        self,
        policy,
        cfg: CriticConfig,
        optim: OptimConfig,
        wrap=lambda model: model,
        compute: Callable[[], ContextManager] = contextlib.nullcontext,
    ):
        self.cfg, self.micro_batch_tokens, self.compute = cfg, optim.micro_batch_tokens, compute
        self.model = wrap(ValueModel(policy))  # distributed.strategy (sharded under fsdp2)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=cfg.lr, weight_decay=optim.weight_decay)

    def state_dict(self) -> dict:
        return {"model": fsdp.model_state(self.model), "optimizer": fsdp.optimizer_state(self.model, self.optimizer)}

    def load_state_dict(self, state: dict) -> None:
        fsdp.load_model_state(self.model, state["model"])
        fsdp.load_optimizer_state(self.model, self.optimizer, state["optimizer"])

    def values(self, seqs: Sequences) -> Tensor:
        """V(s_t) of every response token (0 on padding), in micro-batches without gradient."""
        return per_response_token(self.model, whole_rows(seqs), self.micro_batch_tokens, self.model)

    def fit(self, seqs: Sequences, returns: Tensor, old_values: Tensor, parts: list[list[int]]) -> dict[str, float]:
        """One critic step per mini-batch of rows (the policy's ``parts``); their mean statistics."""
        if len(parts) == 1:
            return self.update(seqs, returns, old_values)
        per_step = []
        for rows in parts:
            sub = select(seqs, rows)
            index, width = torch.tensor(rows), sub.response_ids.shape[1]
            per_step.append(self.update(sub, returns[index, :width], old_values[index, :width]))
        return {k: sum(s[k] for s in per_step) / len(per_step) for k in per_step[0]}

    def update(self, seqs: Sequences, returns: Tensor, old_values: Tensor) -> dict[str, float]:
        """One step on the clipped value loss ½·max((V−R)², (clip(V, V_old±ε) − R)²), token-mean; the
        gradients are freed after it. Under fsdp2 only the last backward reduce-scatters them."""
        seqs = whole_rows(seqs)
        norm = distributed.normaliser(seqs.response_mask, scale=1.0)  # global batch
        self.optimizer.zero_grad(set_to_none=True)
        total, clipped_frac = 0.0, 0.0
        all_rows = list(range(len(seqs.input_ids)))
        micro = list(lockstep_micro_batches(seqs, all_rows, self.micro_batch_tokens, self.model))
        with self.compute():
            for k, (idx, mb, weight) in enumerate(micro):
                fsdp.sync_gradients(self.model, k == len(micro) - 1)
                width = mb.response_ids.shape[1]
                rows = torch.tensor(idx)
                device = self.model.head.weight.device
                ret, old = returns[rows, :width].to(device), old_values[rows, :width].to(device)
                mask = mb.response_mask.to(device) * weight
                v = self.model(mb)
                v_clipped = old + (v - old).clamp(-self.cfg.cliprange_value, self.cfg.cliprange_value)
                loss_mat = 0.5 * torch.maximum((v - ret) ** 2, (v_clipped - ret) ** 2)
                loss = aggregate(loss_mat, mask, "token-mean", norm)
                loss.backward()
                total += loss.item()
                clipped_frac += float((((v_clipped - ret) ** 2 > (v - ret) ** 2).float() * mask).sum()) / norm.tokens
        fsdp.sync_gradients(self.model, True)
        distributed.all_reduce_grads(self.model.parameters())
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return {"critic/value_loss": total, "critic/vf_clipfrac": clipped_frac}
