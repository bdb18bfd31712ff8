"""Per-token log-probs of responses under a model, in post-train or pre-train space.

Post-train space scores ``log π(y | x)`` on ``prompt + response``; pre-train space scores
``log π(y | c)`` on ``[c] + response`` with ``c`` the context token (``<|im_start|>`` for Qwen),
so the prompt never enters the forward pass. Sequences are right-padded, so positions start at 0
in both spaces, and packed into micro-batches of at most ``micro_batch_tokens`` tokens.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch import Tensor

from prerl import fsdp
from prerl.config import Space


@dataclass
class Sequences:
    """Right-padded model inputs whose last ``mask.sum(-1)`` positions (before padding) are the response."""

    input_ids: Tensor  # [B, L]
    attention_mask: Tensor  # [B, L]
    response_start: Tensor  # [B] index of the first response token
    response_ids: Tensor  # [B, T] right-padded responses
    response_mask: Tensor  # [B, T]


def contexts(space: Space, prompt_ids: list[list[int]], group: list[int], context_id: int) -> list[list[int]]:
    """The conditioning tokens of every response in ``space``."""
    if space == Space.pre:
        return [[context_id] for _ in group]
    return [prompt_ids[g] for g in group]


def pack(ctx: list[list[int]], responses: list[list[int]], pad_id: int) -> Sequences:
    rows = [c + r for c, r in zip(ctx, responses)]
    width, resp_width = max(map(len, rows)), max(map(len, responses))
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    attn = torch.zeros_like(ids)
    resp = torch.full((len(rows), resp_width), pad_id, dtype=torch.long)
    resp_mask = torch.zeros((len(rows), resp_width))
    for i, (row, r) in enumerate(zip(rows, responses)):
        ids[i, : len(row)] = torch.tensor(row)
        attn[i, : len(row)] = 1
        resp[i, : len(r)] = torch.tensor(r, dtype=torch.long)
        resp_mask[i, : len(r)] = 1
    start = torch.tensor([len(c) for c in ctx])
    return Sequences(ids, attn, start, resp, resp_mask)


def micro_batches(lengths: list[int], max_tokens: int) -> list[list[int]]:
    """Index lists, grouped by similar length, each with (rows × longest row) ≤ ``max_tokens``."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    current: list[int]
    batches, current, longest = [], [], 0
    for i in order:
        longest_if_added = max(longest, lengths[i])
        if current and longest_if_added * (len(current) + 1) > max_tokens:
            batches.append(current)
            current, longest_if_added = [], lengths[i]
        current.append(i)
        longest = longest_if_added
    if current:
        batches.append(current)
    return batches


def lockstep_micro_batches(
    seqs: Sequences, rows: list[int], max_tokens: int, model
) -> Iterator[tuple[list[int], Sequences, float]]:
    """The micro-batches of the rows ``rows`` of ``seqs`` for a forward and backward each: their row
    indices in ``seqs``, their inputs and their weight in the loss. Under a sharded model each forward
    is a collective, so every rank runs as many as the rank with the most (``fsdp.lockstep``): a rank
    with fewer runs empty ones as row 0 with weight 0."""
    lengths = seqs.attention_mask.sum(-1)[rows].tolist() if rows else []
    for chunk in fsdp.lockstep(micro_batches(lengths, max_tokens), model):
        idx = [rows[j] for j in chunk] or [0]
        yield idx, select(seqs, idx), float(bool(chunk))


def select(seqs: Sequences, idx: list[int]) -> Sequences:
    """Rows ``idx`` of ``seqs``, trimmed to their own longest row."""
    index = torch.tensor(idx)
    attn = seqs.attention_mask[index]
    width = int(attn.sum(-1).max())
    resp_mask = seqs.response_mask[index]
    resp_width = max(1, int(resp_mask.sum(-1).max()))
    return Sequences(
        seqs.input_ids[index, :width],
        attn[:, :width],
        seqs.response_start[index],
        seqs.response_ids[index, :resp_width],
        resp_mask[:, :resp_width],
    )


def response_logprobs(
    model, seqs: Sequences, entropy: str = "none", temperature: float = 1.0
) -> tuple[Tensor, Tensor | None]:
    """log π of each response token, [B, T], and the policy's entropy at each position when
    ``entropy`` is ``"detached"`` (a diagnostic) or ``"grad"`` (an entropy bonus is trained).

    π is the distribution the responses were sampled from: the logits divided by the sampling
    ``temperature`` (as verl and TRL score them), so that the ratio, the KL and the entropy are
    those of the behaviour policy at any temperature.

    Log-probs are taken for every next token first and only then gathered at response positions,
    so no [B, T, V] copy of the logits is made (V is 151k for Qwen). The language-model head runs
    only from the earliest response position on (``logits_to_keep``): the prompt positions before it
    predict no response token, so their logits would be computed, normalised and thrown away.
    """
    device = next(model.parameters()).device
    ids = seqs.input_ids.to(device)
    first = int(seqs.response_start.min()) - 1  # the earliest position that predicts a response token
    kept = torch.arange(first, ids.shape[1] - 1, device=device)  # positions whose next token is scored
    out = model(input_ids=ids, attention_mask=seqs.attention_mask.to(device), **_keep_logits(model, kept))
    logits = out.logits if out.logits.shape[1] == len(kept) else out.logits[:, first:-1]
    logits = logits.float()  # [B, L−1−first, V]: position first + j at column j
    if temperature != 1.0:
        logits = logits / temperature
    lse = torch.logsumexp(logits, dim=-1)
    next_logp = torch.gather(logits, -1, ids[:, first + 1 :].unsqueeze(-1)).squeeze(-1) - lse
    logp = at_responses(next_logp, seqs, first)
    if entropy == "none":
        return logp, None
    with torch.set_grad_enabled(entropy == "grad" and torch.is_grad_enabled()):
        ent = lse - (torch.softmax(logits, dim=-1) * logits).sum(-1)
        return logp, at_responses(ent, seqs, first)


def at_responses(per_position: Tensor, seqs: Sequences, first: int = 0) -> Tensor:
    """[B, T]: the values of ``per_position`` ([B, columns], column j = position ``first`` + j) at the
    positions that predict each response token. The token at position p is predicted at p − 1; the
    columns of response padding are clamped to the last column (the response mask zeroes them)."""
    device, T = per_position.device, seqs.response_ids.shape[1]
    columns = (seqs.response_start.to(device) - 1 - first).unsqueeze(-1) + torch.arange(T, device=device)
    return torch.gather(per_position, 1, columns.clamp(max=per_position.shape[1] - 1))


def _keep_logits(model, kept: Tensor) -> dict:
    """``logits_to_keep`` for models whose forward takes it (transformers' causal LMs); others return
    every position, and the caller keeps the columns ``kept`` itself."""
    if "logits_to_keep" in inspect.signature(model.forward).parameters:
        return {"logits_to_keep": kept}
    return {}


def score_logprobs(model, seqs: Sequences, max_tokens: int, temperature: float = 1.0) -> Tensor:
    """log π of every response token (0 on padding) at the sampling ``temperature``, computed in
    micro-batches without gradient."""
    return per_response_token(
        model, seqs, max_tokens, lambda mb: response_logprobs(model, mb, temperature=temperature)[0]
    )


@torch.no_grad()
def per_response_token(model, seqs: Sequences, max_tokens: int, fn: Callable[[Sequences], Tensor]) -> Tensor:
    """[B, T]: ``fn`` of each micro-batch of ``seqs`` (its values at the response tokens, [rows, T_mb]),
    run without gradient and 0 on padding. ``model`` is the one ``fn`` runs: under a sharded model its
    weights are gathered whole first, as ranks run different numbers of micro-batches here."""
    out = torch.zeros_like(seqs.response_mask)
    with fsdp.full_weights(model):
        for idx in micro_batches(seqs.attention_mask.sum(-1).tolist(), max_tokens):
            mb = select(seqs, idx)
            out[torch.tensor(idx), : mb.response_ids.shape[1]] = fn(mb).cpu() * mb.response_mask
    return out
