"""A lean sampling loop over a transformers causal LM with its KV cache.

Replaces ``model.generate`` in the transformers engine because a profile showed its per-step work to
be the cost on small models (benchmarks/bench.py --profile; docs/performance.md). Against
``generate`` with ``num_return_sequences`` it saves:

- the prompt is prefilled once and its KV cache copied ``n`` times, not prefilled ``n`` times;
- rows that have emitted EOS leave the batch by compaction (``compaction``: rows from the back take
  their places, so only those are copied), and late decoding steps run on the unfinished rows only;
- sampling is one softmax and one uniform per row (inverse CDF), no logits-processor chain;
- nothing grows per token: the KV cache and the attention mask live in buffers sized for the whole
  rollout, and each step works on views of them (transformers' ``DynamicCache`` concatenates every
  layer's whole cache at every token: O(length²) copying);
- for Qwen3 and Llama models each token goes through ``plain_step``'s plain-op step rather than the model's
  module stack (``decode_step``).
"""

from __future__ import annotations

import torch
from torch import Tensor
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer

from prerl.models.loading import cache_kwargs
from prerl.rollout import plain_step
from prerl.rollout.base import trim_at_eos

# Dropping finished rows copies cache rows (the module step: every kept one); wait until this share
# of the batch has finished.
SHRINK_AT = 0.125


def sample_next(logits: Tensor, temperature: float, top_p: float) -> Tensor:
    """One token per row: argmax at temperature 0, else a draw from softmax(logits / T) within top-p."""
    return draw(logits, temperature, top_p)[0]


def draw(logits: Tensor, temperature: float, top_p: float) -> tuple[Tensor, Tensor]:
    """``sample_next``'s tokens and each one's log-probability under the distribution it was drawn from
    (fp32): log softmax(logits / T) at the token, minus the log of the nucleus' mass when top_p < 1 (the
    truncated distribution renormalised, what was sampled); 0 for greedy rows (a point mass). The
    importance weight of a rollout correction needs the sampler's own probability of each token."""
    if temperature <= 0:
        token = logits.argmax(-1)
        return token, torch.zeros(token.shape, device=logits.device)
    scaled = logits.float() / temperature
    probs = torch.softmax(scaled, dim=-1)
    if top_p < 1.0:  # keep the smallest set of tokens whose mass reaches top_p
        sorted_p, order = probs.sort(dim=-1, descending=True)
        outside = sorted_p.cumsum(-1) - sorted_p >= top_p
        probs = probs.scatter(-1, order, sorted_p.masked_fill(outside, 0.0))
    # Inverse CDF: the first token whose cumulative mass reaches u ~ U(0, total]. One uniform per row
    # instead of one per vocabulary entry (an exponential race, argmax(p / E)): one pass over the
    # vocabulary fewer per token (docs/LOG.md, round f4712cc → 59358e9). u > 0 skips leading zero-mass
    # tokens and u ≤ total always finds one; a token's mass is resolved to ≈ 2⁻²⁴ of the total, the
    # resolution of a float32 uniform.
    cdf = probs.cumsum_(-1)
    u = torch.rand((len(cdf), 1), device=cdf.device).neg_().add_(1).mul_(cdf[:, -1:])
    token = torch.searchsorted(cdf, u).squeeze(-1)
    # the trainer's formula (prerl.train.logprobs.next_token_logprobs: s_y − logsumexp(s)), so that an engine and
    # a trainer that see the same logits agree to the rounding of one log-softmax
    logp = scaled.gather(-1, token.unsqueeze(-1)).squeeze(-1) - torch.logsumexp(scaled, dim=-1)
    if top_p < 1.0:
        logp -= cdf[:, -1].log()  # the nucleus' mass: the truncated distribution renormalised
    return token, logp


class PreallocatedLayer(DynamicLayer):
    """A ``DynamicLayer`` whose keys and values are views of buffers sized for the whole rollout:
    appending a token writes one position instead of concatenating the whole cache."""

    def __init__(self, capacity: int):
        super().__init__()
        self.capacity, self.length = capacity, 0

    def lazy_initialization(self, key_states: Tensor, value_states: Tensor) -> None:
        self.device = key_states.device
        b, h, _, d = key_states.shape
        self.key_buffer = key_states.new_empty((b, h, self.capacity, d))
        self.value_buffer = value_states.new_empty((b, value_states.shape[1], self.capacity, value_states.shape[3]))
        self.is_initialized = True

    def update(self, key_states: Tensor, value_states: Tensor, *args, **kwargs) -> tuple[Tensor, Tensor]:
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        end = self.length + key_states.shape[-2]
        if end > self.capacity:
            raise RuntimeError(f"KV cache holds {self.capacity} positions; asked for {end}")
        self.key_buffer[:, :, self.length : end] = key_states
        self.value_buffer[:, :, self.length : end] = value_states
        self.length = end
        return self._views()

    def _views(self) -> tuple[Tensor, Tensor]:
        self.keys = self.key_buffer[:, :, : self.length]
        self.values = self.value_buffer[:, :, : self.length]
        return self.keys, self.values

    def batch_repeat_interleave(self, repeats: int) -> None:
        if self.is_initialized:
            self.key_buffer = self.key_buffer.repeat_interleave(repeats, dim=0)
            self.value_buffer = self.value_buffer.repeat_interleave(repeats, dim=0)
            self._views()

    def batch_select_indices(self, indices: Tensor) -> None:
        if self.is_initialized:
            self.key_buffer, self.value_buffer = self.key_buffer[indices], self.value_buffer[indices]
            self._views()


def preallocated_cache(model, capacity: int) -> DynamicCache:
    """The model's ``DynamicCache`` with every plain full-attention layer preallocated for ``capacity``
    positions (sliding-window and other special layers keep transformers' own implementation)."""
    cache = DynamicCache(config=model.config)
    cache.layers = [PreallocatedLayer(capacity) if type(layer) is DynamicLayer else layer for layer in cache.layers]
    return cache


def compaction(finished: Tensor) -> Tensor:
    """The batch's rows once the finished ones leave, as ``order`` (``order[i]``: the old row now at
    ``i``): unfinished rows at the front keep their place and unfinished rows from the back fill the
    places of finished ones, so only those move, and every row that moves comes from ``len(order)``
    or beyond (a step may then copy them in place and keep the front of its buffers)."""
    alive = ~finished
    n = int(alive.sum())
    order = torch.arange(n, device=finished.device)
    order[finished[:n].nonzero().squeeze(-1)] = alive[n:].nonzero().squeeze(-1) + n
    return order


class ModuleStep:
    """A decode step through the model's own forward (any transformers causal LM): the reference
    arithmetic, and the fallback for models ``plain_step`` does not cover."""

    def __init__(self, model, cache: DynamicCache, attend: Tensor):
        self.model, self.cache, self.attend = model, cache, attend
        self.kv = cache_kwargs(model, cache)

    def keep(self, order: Tensor) -> None:
        self.cache.batch_select_indices(order)
        self.attend = self.attend[order]

    def __call__(self, token: Tensor, position: Tensor, length: int) -> Tensor:
        out = self.model(
            input_ids=token.unsqueeze(-1),
            attention_mask=self.attend[:, : length + 1],
            position_ids=position.unsqueeze(-1),
            **self.kv,
        )
        return out.logits[:, -1]


def decode_step(model, cache: DynamicCache, attend: Tensor, plain_decode: bool = True):
    """The one-token step of the loop below: ``plain_step.PlainStep`` when ``plain_decode``
    (``rollout.plain_decode``) and the model is one it computes (it skips the module stack's per-call
    overhead: docs/performance.md#what-makes-a-step-cheaper), else ``ModuleStep``. ``attend`` [B, capacity] is 1 where a
    cache position may be attended."""
    layers = [layer for layer in cache.layers if isinstance(layer, PreallocatedLayer)]
    if plain_decode and plain_step.supports(model) and len(layers) == len(cache.layers):
        keys, values = [layer.key_buffer for layer in layers], [layer.value_buffer for layer in layers]
        return plain_step.PlainStep(model, keys, values, attend)
    return ModuleStep(model, cache, attend)


def sample(*args, **kwargs) -> list[list[int]]:
    """``sample_with_logprobs``'s responses alone (the same arguments)."""
    return sample_with_logprobs(*args, **kwargs)[0]


@torch.inference_mode()
def sample_with_logprobs(
    model,
    prompts: list[list[int]],
    n: int,
    temperature: float,
    top_p: float,
    max_new_tokens: int,
    eos_id: int,
    pad_id: int,
    plain_decode: bool = True,
) -> tuple[list[list[int]], list[list[float]]]:
    """``n`` continuations of each prompt (prompt-major), each cut after its first EOS, and the
    log-probability of each of their tokens under the distribution it was drawn from (``draw``).
    ``plain_decode``: decode with ``plain_step`` where it applies (``decode_step``)."""
    device = next(model.parameters()).device
    width = max(map(len, prompts))
    ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    # the mask of the whole rollout: prompt positions (left padding) then every new position
    mask = torch.ones((len(prompts), width + max_new_tokens), dtype=torch.long)
    for i, p in enumerate(prompts):  # left padding: every prompt ends where decoding starts
        ids[i, width - len(p) :] = torch.tensor(p)
        mask[i, : width - len(p)] = 0
    ids, mask = ids.to(device), mask.to(device)
    position = (mask[:, :width].cumsum(-1) - 1).clamp(min=0)
    cache = preallocated_cache(model, width + max_new_tokens)  # filled in place by the prefill
    out = model(
        input_ids=ids,
        attention_mask=mask[:, :width],
        position_ids=position,
        logits_to_keep=1,
        **cache_kwargs(model, cache),
    )
    cache.batch_repeat_interleave(n)
    logits = out.logits[:, -1].repeat_interleave(n, dim=0)
    step = decode_step(model, cache, mask.repeat_interleave(n, dim=0), plain_decode)
    position = position[:, -1].repeat_interleave(n) + 1

    rows = torch.arange(len(prompts) * n, device=device)  # batch row -> output row
    tokens = torch.full((len(rows), max_new_tokens), pad_id, dtype=torch.long, device=device)
    logps = torch.zeros((len(rows), max_new_tokens), device=device)
    finished = torch.zeros(len(rows), dtype=torch.bool, device=device)
    for t in range(max_new_tokens):
        token, logp = draw(logits, temperature, top_p)
        tokens[rows, t] = torch.where(finished, pad_id, token)
        logps[rows, t] = logp
        finished |= token == eos_id
        n_finished = int(finished.sum())
        if t == max_new_tokens - 1 or n_finished == len(rows):
            break
        if n_finished >= SHRINK_AT * len(rows):
            order = compaction(finished)
            step.keep(order)
            rows, token, position, finished = rows[order], token[order], position[order], finished[order]
        logits, position = step(token, position, width + t), position + 1
    responses = [trim_at_eos(row, eos_id)[0] for row in tokens.tolist()]
    return responses, [row[: len(r)] for row, r in zip(logps.tolist(), responses)]
