"""Per-token log-probs of responses under a model, in post-train or pre-train space.

Post-train space scores ``log π(y | x)`` on ``prompt + response``; pre-train space scores
``log π(y | c)`` on ``[c] + response`` with ``c`` the context token (``<|im_start|>`` for Qwen),
so the prompt never enters the forward pass. Sequences are right-padded, so positions start at 0
in both spaces, and packed into micro-batches of at most ``micro_batch_tokens`` tokens. Within a
micro-batch the log-softmax over the vocabulary runs a chunk of positions at a time
(``next_token_logprobs``).

Sequences that carry ``context_group`` (post-train space: the samples of one prompt) are scored in
two forwards per micro-batch: each distinct context once, then every response on that context's KV
cache (``_shared_context_logits``). The prompt's activations are computed once per micro-batch rather
than once per sample; autograd sums the gradient of every sample through the shared keys and values,
so the loss and its gradient are those of the one-pass forward, to rounding.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch import Tensor
from transformers import DynamicCache

from prerl import fsdp
from prerl.models import cache_kwargs
from prerl.config import Space


@dataclass
class Sequences:
    """Right-padded model inputs whose last ``mask.sum(-1)`` positions (before padding) are the response."""

    input_ids: Tensor  # [B, L]
    attention_mask: Tensor  # [B, L]
    response_start: Tensor  # [B] index of the first response token
    response_ids: Tensor  # [B, T] right-padded responses
    response_mask: Tensor  # [B, T]
    # [B] rows with equal values have the same context, forwarded once per micro-batch; None: each row whole
    context_group: Tensor | None = None


def contexts(space: Space, prompt_ids: list[list[int]], group: list[int], context_id: int) -> list[list[int]]:
    """The conditioning tokens of every response in ``space``."""
    if space == Space.pre:
        return [[context_id] for _ in group]
    return [prompt_ids[g] for g in group]


def pack(
    ctx: list[list[int]], responses: list[list[int]], pad_id: int, context_group: list[int] | None = None
) -> Sequences:
    """Right-padded ``ctx + response`` rows; ``context_group`` (rows with equal values share a context)
    turns on the shared-context forward."""
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
    groups = None if context_group is None else torch.tensor(context_group)
    return Sequences(ids, attn, start, resp, resp_mask, groups)


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
        None if seqs.context_group is None else seqs.context_group[index],
    )


def response_logprobs(
    model, seqs: Sequences, entropy: str = "none", temperature: float = 1.0
) -> tuple[Tensor, Tensor | None]:
    """log π of each response token, [B, T], and the policy's entropy at each position when
    ``entropy`` is ``"detached"`` (a diagnostic) or ``"grad"`` (an entropy bonus is trained).

    π is the distribution the responses were sampled from: the logits divided by the sampling
    ``temperature`` (as verl and TRL score them), so that the ratio, the KL and the entropy are
    those of the behaviour policy at any temperature.

    What is materialised over the whole vocabulary V (151,936 for Qwen3): the model's logits, once,
    in the model's dtype, and in backward their gradient. The language-model head runs only from the
    earliest response position on (``logits_to_keep``): the prompt positions before it predict no
    response token. The fp32 log-softmax and entropy are computed a chunk of positions at a time
    (``next_token_logprobs``), so their copies of the logits are never larger than a chunk.
    """
    device = next(model.parameters()).device
    if seqs.context_group is not None:
        targets = seqs.response_ids.to(device)
        logp, ent = next_token_logprobs(_shared_context_logits(model, seqs), targets, temperature, entropy)
        return logp, ent
    ids = seqs.input_ids.to(device)
    first = int(seqs.response_start.min()) - 1  # the earliest position that predicts a response token
    kept = torch.arange(first, ids.shape[1] - 1, device=device)  # positions whose next token is scored
    out = model(input_ids=ids, attention_mask=seqs.attention_mask.to(device), **_keep_logits(model, kept))
    logits = out.logits if out.logits.shape[1] == len(kept) else out.logits[:, first:-1]
    # [B, L−1−first] each: position first + j at column j
    next_logp, next_entropy = next_token_logprobs(logits, ids[:, first + 1 :], temperature, entropy)
    logp = at_responses(next_logp, seqs, first)
    return logp, None if next_entropy is None else at_responses(next_entropy, seqs, first)


def _shared_context_logits(model, seqs: Sequences) -> Tensor:
    """[B, T, V]: at column j, the logits that predict response token j, from one forward of each
    distinct context (left-padded, so that all end on the same column and its last logits predict the
    first response token) and one of every response but its last token on its context's KV cache."""
    device = next(model.parameters()).device
    groups, owner = torch.unique(seqs.context_group, return_inverse=True)
    first_row = [owner.tolist().index(g) for g in range(len(groups))]  # a row of each context
    lengths = seqs.response_start[first_row]
    width = int(lengths.max())
    ctx_ids = torch.zeros((len(groups), width), dtype=torch.long)
    ctx_mask = torch.zeros_like(ctx_ids)
    for g, (row, n) in enumerate(zip(first_row, lengths.tolist())):
        ctx_ids[g, width - n :] = seqs.input_ids[row, :n]
        ctx_mask[g, width - n :] = 1
    cache = DynamicCache(config=model.config)
    kv = cache_kwargs(model, cache)
    position = (ctx_mask.cumsum(-1) - 1).clamp(min=0)
    ctx_ids, ctx_mask, position, owner = ctx_ids.to(device), ctx_mask.to(device), position.to(device), owner.to(device)
    out = model(input_ids=ctx_ids, attention_mask=ctx_mask, position_ids=position, **_keep_logits(model, 1), **kv)
    first_logits = out.logits[:, -1][owner].unsqueeze(1)  # [B, 1, V]: predicts response token 0
    T = seqs.response_ids.shape[1]
    if T == 1:
        return first_logits
    cache.batch_select_indices(owner)  # each row attends to its context's keys and values (autograd sums)
    response = seqs.response_ids[:, : T - 1].to(device)
    mask = torch.cat([ctx_mask[owner], seqs.response_mask[:, : T - 1].to(device, torch.long)], dim=-1)
    positions = lengths.to(device)[owner].unsqueeze(-1) + torch.arange(T - 1, device=device)
    out = model(input_ids=response, attention_mask=mask, position_ids=positions, **kv)
    return torch.cat([first_logits, out.logits], dim=1)


# The fp32 work buffers of the log-softmax hold this many logits at most: 2**26 elements, 256 MiB
# each (441 positions of Qwen3's vocabulary); forward and backward hold a few such buffers at once.
CHUNK_ELEMENTS = 1 << 26


def chunk_positions(rows: int, vocab: int, chunk_elements: int = CHUNK_ELEMENTS) -> int:
    """Positions per chunk: rows × positions × vocab within ``chunk_elements`` (one position at least)."""
    return max(1, chunk_elements // (rows * vocab))


def next_token_logprobs(
    logits: Tensor, targets: Tensor, temperature: float = 1.0, entropy: str = "none", chunk_elements=CHUNK_ELEMENTS
) -> tuple[Tensor, Tensor | None]:
    """log π(targets) and, unless ``entropy`` is ``"none"``, the entropy of π at each position, [B, L]
    each in fp32, where π = softmax(logits / temperature) and ``logits`` is [B, L, V] in any dtype.
    The entropy is differentiable only when ``entropy`` is ``"grad"``. Positions are taken in chunks
    of ``chunk_positions`` (``_ChunkedLogSoftmax``)."""
    rows, _, vocab = logits.shape
    chunk = chunk_positions(rows, vocab, chunk_elements)
    return _ChunkedLogSoftmax.apply(logits, targets, float(temperature), chunk, entropy)


class _ChunkedLogSoftmax(torch.autograd.Function):
    """``next_token_logprobs`` with a hand-written backward, so that neither pass keeps more than one
    chunk of fp32 probabilities: autograd through the plain formula would save the fp32 (scaled)
    logits and the softmax of every position for backward, two [B, L, V] fp32 tensors.

    With s = logits / T, p = softmax(s), log p = s − lse(s) and H = −Σ p log p:
    ∂ log p_y / ∂s = onehot(y) − p and ∂H/∂s_j = −p_j (log p_j + H); ∂s/∂logits = 1/T."""

    @staticmethod
    def forward(ctx, logits: Tensor, targets: Tensor, temperature: float, chunk: int, entropy: str):
        ctx.set_materialize_grads(False)
        shape = logits.shape[:2]
        lse = logits.new_empty(shape, dtype=torch.float32)
        logp = torch.empty_like(lse)
        ent = torch.empty_like(lse) if entropy != "none" else None
        for cols in _chunks(shape[1], chunk):
            s = _scaled(logits[:, cols], temperature)
            lse[:, cols] = torch.logsumexp(s, dim=-1)
            logp[:, cols] = torch.gather(s, -1, targets[:, cols].unsqueeze(-1)).squeeze(-1) - lse[:, cols]
            if ent is not None:
                ent[:, cols] = lse[:, cols] - (torch.softmax(s, dim=-1) * s).sum(-1)
        ctx.save_for_backward(logits, targets, lse, ent)
        ctx.temperature, ctx.chunk = temperature, chunk
        if ent is not None and entropy != "grad":
            ctx.mark_non_differentiable(ent)
        return logp, ent

    @staticmethod
    def backward(ctx, grad_logp: Tensor | None, grad_ent: Tensor | None):
        logits, targets, lse, ent = ctx.saved_tensors
        grad = torch.empty_like(logits)
        for cols in _chunks(logits.shape[1], ctx.chunk):
            s = _scaled(logits[:, cols], ctx.temperature)
            p = (s - lse[:, cols].unsqueeze(-1)).exp_()  # softmax(s), formed as autograd's logsumexp backward does
            if grad_logp is None:
                g = torch.zeros_like(p)
            else:
                g_y = grad_logp[:, cols].unsqueeze(-1)
                g = (-g_y * p).scatter_add_(-1, targets[:, cols].unsqueeze(-1), g_y)
            if grad_ent is not None:
                shift = (lse[:, cols] - ent[:, cols]).unsqueeze(-1)  # log p_j + H = s_j − (lse − H)
                g.sub_((s - shift).mul_(p).mul_(grad_ent[:, cols].unsqueeze(-1)))
            grad[:, cols] = g if ctx.temperature == 1.0 else g.div_(ctx.temperature)
        return grad, None, None, None, None


def _chunks(length: int, size: int) -> list[slice]:
    return [slice(a, min(a + size, length)) for a in range(0, length, size)]


def _scaled(logits: Tensor, temperature: float) -> Tensor:
    """fp32 logits / T (a view of ``logits`` when they are fp32 and T = 1)."""
    logits = logits.float()
    return logits if temperature == 1.0 else logits / temperature


def at_responses(per_position: Tensor, seqs: Sequences, first: int = 0) -> Tensor:
    """[B, T]: the values of ``per_position`` ([B, columns], column j = position ``first`` + j) at the
    positions that predict each response token. The token at position p is predicted at p − 1; the
    columns of response padding are clamped to the last column (the response mask zeroes them)."""
    device, T = per_position.device, seqs.response_ids.shape[1]
    columns = (seqs.response_start.to(device) - 1 - first).unsqueeze(-1) + torch.arange(T, device=device)
    return torch.gather(per_position, 1, columns.clamp(max=per_position.shape[1] - 1))


def _keep_logits(model, kept: Tensor | int) -> dict:
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
