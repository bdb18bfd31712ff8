"""A lean sampling loop over a transformers causal LM with its KV cache.

Replaces ``model.generate`` in the transformers engine because a profile showed its per-step work to
be the cost on small models (benchmarks/bench.py --profile; README "Performance"). Against
``generate`` with ``num_return_sequences`` it saves:

- the prompt is prefilled once and its KV cache copied ``n`` times, not prefilled ``n`` times;
- rows that have emitted EOS leave the batch (their cache rows are dropped), so late decoding steps
  run on the unfinished rows only;
- sampling is one softmax and an exponential race (Gumbel-max), no logits-processor chain.
"""

from __future__ import annotations

import inspect

import torch
from torch import Tensor
from transformers import DynamicCache

# Dropping finished rows copies the whole cache; wait until this share of the batch has finished.
SHRINK_AT = 0.125


def sample_next(logits: Tensor, temperature: float, top_p: float) -> Tensor:
    """One token per row: argmax at temperature 0, else a draw from softmax(logits / T) within top-p."""
    if temperature <= 0:
        return logits.argmax(-1)
    probs = torch.softmax(logits.float() / temperature, dim=-1)
    if top_p < 1.0:  # keep the smallest set of tokens whose mass reaches top_p
        sorted_p, order = probs.sort(dim=-1, descending=True)
        outside = sorted_p.cumsum(-1) - sorted_p >= top_p
        probs = probs.scatter(-1, order, sorted_p.masked_fill(outside, 0.0))
    # argmax(p / E) with E ~ Exp(1) is a draw from p; faster than torch.multinomial on CPU
    return (probs / torch.empty_like(probs).exponential_()).argmax(-1)


@torch.inference_mode()
def sample(model, prompts: list[list[int]], n: int, temperature: float, top_p: float, max_new_tokens: int,
           eos_id: int, pad_id: int) -> list[list[int]]:
    """``n`` continuations of each prompt (prompt-major), each cut after its first EOS."""
    device = next(model.parameters()).device
    width = max(map(len, prompts))
    ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    attn = torch.zeros_like(ids)
    for i, p in enumerate(prompts):  # left padding: every prompt ends where decoding starts
        ids[i, width - len(p):] = torch.tensor(p)
        attn[i, width - len(p):] = 1
    ids, attn = ids.to(device), attn.to(device)
    position = (attn.cumsum(-1) - 1).clamp(min=0)
    cache = DynamicCache(config=model.config)  # filled in place by every forward below
    kv = {_cache_keyword(model): cache, "use_cache": True}
    out = model(input_ids=ids, attention_mask=attn, position_ids=position, logits_to_keep=1, **kv)
    cache.batch_repeat_interleave(n)
    logits = out.logits[:, -1].repeat_interleave(n, dim=0)
    attn = attn.repeat_interleave(n, dim=0)
    position = position[:, -1].repeat_interleave(n) + 1

    rows = torch.arange(len(prompts) * n, device=device)  # batch row -> output row
    tokens = torch.full((len(rows), max_new_tokens), pad_id, dtype=torch.long, device=device)
    finished = torch.zeros(len(rows), dtype=torch.bool, device=device)
    for t in range(max_new_tokens):
        token = sample_next(logits, temperature, top_p)
        tokens[rows, t] = torch.where(finished, pad_id, token)
        finished |= token == eos_id
        n_finished = int(finished.sum())
        if t == max_new_tokens - 1 or n_finished == len(rows):
            break
        if n_finished >= SHRINK_AT * len(rows):
            keep = (~finished).nonzero().squeeze(-1)
            cache.batch_select_indices(keep)
            rows, token, attn, position, finished = rows[keep], token[keep], attn[keep], position[keep], finished[keep]
        attn = torch.cat([attn, attn.new_ones(len(rows), 1)], dim=-1)
        out = model(input_ids=token.unsqueeze(-1), attention_mask=attn, position_ids=position.unsqueeze(-1), **kv)
        logits, position = out.logits[:, -1], position + 1
    return [_cut(row, eos_id) for row in tokens.tolist()]


def _cache_keyword(model) -> str:
    """transformers renamed ``past_key_values`` to ``cache`` during 5.x; the vLLM venv has an older 5.x."""
    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


def _cut(row: list[int], eos_id: int) -> list[int]:
    """Up to and including the first EOS; a row without EOS keeps all its tokens (truncated)."""
    if eos_id in row:
        return row[: row.index(eos_id) + 1]
    return row
