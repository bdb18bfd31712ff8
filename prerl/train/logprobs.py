"""Per-token log-probs of responses under a model, in post-train or pre-train space.

Post-train space scores ``log π(y | x)`` on ``prompt + response``; pre-train space scores
``log π(y | c)`` on ``[c] + response`` with ``c`` the context token (``<|im_start|>`` for Qwen),
so the prompt never enters the forward pass. Sequences are right-padded, so positions start at 0
in both spaces, and packed into micro-batches of at most ``micro_batch_tokens`` tokens. Within a
micro-batch the log-softmax over the vocabulary runs a chunk of positions at a time
(``next_token_logprobs``).

Sequences that carry ``context_group`` (post-train space: the samples of one prompt) are scored in
two parts: a forward of each distinct context (``context_states``), then every response on its
context's keys and values (``_shared_context_logits``). An update runs the contexts' forward once for
all its micro-batches: their backwards gather the gradient at the contexts' outputs and
``ContextStates.backward`` sends it through that forward once. Autograd sums every sample's gradient
through the shared keys and values, so the loss and its gradient are those of the one-pass forward,
to rounding; the prompt's tokens are forwarded once per update instead of once per sample.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

import torch
from torch import Tensor
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer

from prerl.config.schema import Space
from prerl.models.loading import cache_kwargs
from prerl.parallel import fsdp


@dataclass
class Sequences:
    """Right-padded model inputs whose last ``mask.sum(-1)`` positions (before padding) are the response."""

    input_ids: Tensor  # [B, L]
    attention_mask: Tensor  # [B, L]
    response_start: Tensor  # [B] index of the first response token
    response_ids: Tensor  # [B, T] right-padded responses
    response_mask: Tensor  # [B, T]
    # [B] rows with equal values have the same context, whose forward they share; None: each row whole
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


def whole_rows(seqs: Sequences) -> Sequences:
    """``seqs`` for a model that forwards every row whole (PPO's critic): no shared contexts."""
    return replace(seqs, context_group=None)


def forwarded_tokens(seqs: Sequences) -> Tensor:
    """[B] the tokens each row brings to a micro-batch's forward: context and response, or only the
    response when the contexts' forward is shared (``context_states``)."""
    if seqs.context_group is not None:
        return seqs.response_mask.sum(-1).long()
    return seqs.attention_mask.sum(-1)


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
    lengths = forwarded_tokens(seqs)[rows].tolist() if rows else []
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
    model, seqs: Sequences, entropy: str = "none", temperature: float = 1.0, contexts: ContextStates | None = None
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

    Rows with a ``context_group`` run on the forward of their contexts: ``contexts`` when given (it
    must hold every context of ``seqs``), else one run here.
    """
    device = next(model.parameters()).device
    if seqs.context_group is not None:
        states = contexts if contexts is not None else context_states(model, seqs, leaves=False)
        logits = _shared_context_logits(model, seqs, states)
        return next_token_logprobs(logits, seqs.response_ids.to(device), temperature, entropy)
    ids = seqs.input_ids.to(device)
    first = int(seqs.response_start.min()) - 1  # the earliest position that predicts a response token
    kept = torch.arange(first, ids.shape[1] - 1, device=device)  # positions whose next token is scored
    out = model(
        input_ids=ids, attention_mask=seqs.attention_mask.to(device), use_cache=False, **_keep_logits(model, kept)
    )
    logits = out.logits if out.logits.shape[1] == len(kept) else out.logits[:, first:-1]
    # [B, L−1−first] each: position first + j at column j
    next_logp, next_entropy = next_token_logprobs(logits, ids[:, first + 1 :], temperature, entropy)
    logp = at_responses(next_logp, seqs, first)
    return logp, None if next_entropy is None else at_responses(next_entropy, seqs, first)


class TracedAroundCache(DynamicCache):
    """transformers' ``DynamicCache`` whose ``update`` ``torch.compile`` leaves out of its graphs
    (``model.compile``): traced, the cache's Python state (which layers hold keys yet, their index)
    would become guards that recompile the compiled decoder layers at nearly every call."""

    @torch.compiler.disable
    def update(self, *args, **kwargs):
        return super().update(*args, **kwargs)


@dataclass
class ContextStates:
    """The forward of the distinct contexts of some rows (``context_states``): per layer their keys and
    values [U, kv_heads, P, D] and the logits that predict a response's first token [U, V].

    Built with ``leaves`` under autograd, these are leaves that the micro-batches' backwards stop at
    and accumulate their gradient in; ``backward`` then sends the sum through the contexts' forward,
    once. Every rank calls it (under FSDP2 a backward is a collective)."""

    row_of: dict[int, int]  # context_group value -> index in these states
    lengths: Tensor  # [U] context tokens
    mask: Tensor  # [U, P] 1 on context tokens (left-padded)
    keys: list[Tensor]
    values: list[Tensor]
    first_logits: Tensor
    attached: list[Tensor]  # keys, values and first logits still attached to the forward (leaves only)

    def backward(self) -> None:
        leaves = [*self.keys, *self.values, self.first_logits]
        grads = [torch.zeros_like(leaf) if leaf.grad is None else leaf.grad for leaf in leaves]
        if self.attached:
            torch.autograd.backward(self.attached, grads)


def context_states(model, seqs: Sequences, rows: list[int] | None = None, leaves: bool = True) -> ContextStates:
    """One forward of the distinct contexts of ``rows`` (all rows when None), left-padded so that all
    end on the same column, whose last logits then predict the first response token."""
    device = next(model.parameters()).device
    assert seqs.context_group is not None
    rows = list(range(len(seqs.context_group))) if rows is None else rows
    group_of, first_row = seqs.context_group.tolist(), dict[int, int]()
    for row in rows:
        first_row.setdefault(group_of[row], row)
    lengths = seqs.response_start[list(first_row.values())]
    width = int(lengths.max())
    ids = torch.zeros((len(first_row), width), dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, (row, n) in enumerate(zip(first_row.values(), lengths.tolist())):
        ids[i, width - n :] = seqs.input_ids[row, :n]
        mask[i, width - n :] = 1
    position = (mask.cumsum(-1) - 1).clamp(min=0)
    cache = TracedAroundCache(config=model.config)
    ids, mask, position = ids.to(device), mask.to(device), position.to(device)
    out = model(
        input_ids=ids,
        attention_mask=mask,
        position_ids=position,
        **_keep_logits(model, 1),
        **cache_kwargs(model, cache),
    )
    keys, values = _keys_and_values(cache)
    first_logits = out.logits[:, -1]
    attached: list[Tensor] = []
    if leaves and torch.is_grad_enabled():
        attached = [*keys, *values, first_logits]
        keys, values = [k.detach().requires_grad_() for k in keys], [v.detach().requires_grad_() for v in values]
        first_logits = first_logits.detach().requires_grad_()
    row_of = {group: i for i, group in enumerate(first_row)}
    return ContextStates(row_of, lengths, mask, keys, values, first_logits, attached)


def shares_contexts(model) -> bool:
    """Whether ``context_states`` applies: every layer's cache is transformers' plain full-attention
    one (a sliding window would drop context keys that the one-pass forward attends to)."""
    return all(type(layer) is DynamicLayer for layer in DynamicCache(config=model.config).layers)


def _keys_and_values(cache: DynamicCache) -> tuple[list[Tensor], list[Tensor]]:
    keys, values = [], []
    for layer in cache.layers:
        assert isinstance(layer, DynamicLayer) and layer.keys is not None and layer.values is not None
        keys.append(layer.keys)
        values.append(layer.values)
    return keys, values


def _shared_context_logits(model, seqs: Sequences, states: ContextStates) -> Tensor:
    """[B, T, V]: at column j, the logits that predict response token j: the context's last logits for
    j = 0, then one forward of every response but its last token on its context's keys and values."""
    device = next(model.parameters()).device
    assert seqs.context_group is not None
    owner = torch.tensor([states.row_of[g] for g in seqs.context_group.tolist()], device=device)
    first_logits = states.first_logits[owner].unsqueeze(1)  # [B, 1, V]
    T = seqs.response_ids.shape[1]
    if T == 1:
        return first_logits
    kv = [(k[owner], v[owner]) for k, v in zip(states.keys, states.values)]  # autograd sums over the rows
    cache = TracedAroundCache(ddp_cache_data=kv, config=model.config)
    response = seqs.response_ids[:, : T - 1].to(device)
    mask = torch.cat([states.mask[owner], seqs.response_mask[:, : T - 1].to(device, torch.long)], dim=-1)
    positions = states.lengths.to(device)[owner].unsqueeze(-1) + torch.arange(T - 1, device=device)
    out = model(input_ids=response, attention_mask=mask, position_ids=positions, **cache_kwargs(model, cache))
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


@torch.no_grad()
def score_logprobs(model, seqs: Sequences, max_tokens: int, temperature: float = 1.0) -> Tensor:
    """log π of every response token (0 on padding) at the sampling ``temperature``, computed in
    micro-batches without gradient (shared contexts forwarded once for all of them)."""
    with fsdp.full_weights(model):
        contexts = context_states(model, seqs) if seqs.context_group is not None else None
        return per_response_token(
            model,
            seqs,
            max_tokens,
            lambda mb: response_logprobs(model, mb, temperature=temperature, contexts=contexts)[0],
        )


@torch.no_grad()
def per_response_token(model, seqs: Sequences, max_tokens: int, fn: Callable[[Sequences], Tensor]) -> Tensor:
    """[B, T]: ``fn`` of each micro-batch of ``seqs`` (its values at the response tokens, [rows, T_mb]),
    run without gradient and 0 on padding. ``model`` is the one ``fn`` runs: under a sharded model its
    weights are gathered whole first, as ranks run different numbers of micro-batches here."""
    out = torch.zeros_like(seqs.response_mask)
    with fsdp.full_weights(model):
        for idx in micro_batches(forwarded_tokens(seqs).tolist(), max_tokens):
            mb = select(seqs, idx)
            out[torch.tensor(idx), : mb.response_ids.shape[1]] = fn(mb).cpu() * mb.response_mask
    return out
