"""Bytes of one micro-batch's forward and backward, derived from the decoder layer's operations.

A micro-batch holds ``T`` tokens (``optim.micro_batch_tokens``, padding included) in rows of at most
``S`` positions. What autograd keeps for the backward of one Llama-family decoder layer (transformers'
Qwen3, Qwen2 and Llama code with sdpa attention and prerl's RMSNorm function, prerl/models/rms_norm.py), per
token, with ``c`` the compute dtype's bytes (``model.autocast``, else the weights'), ``H`` the width,
``I`` the MLP width, ``d`` the head width, ``n_q``/``n_kv`` the query and key/value heads:

- each RMSNorm keeps its fp32 normalised input and its fp32 inverse RMS: 4·H + 4 bytes, twice;
- the linear layers keep their input in ``c``. Under autocast every linear casts its input itself, so
  q, k and v keep three copies of the normed input and the MLP's gate and up two; without autocast
  they share one: (3 + 2)·H·c or (1 + 1)·H·c. The output projection's input is attention's output;
- Qwen3's query and key norms keep 4·d + 4 bytes per head: 4·(n_q + n_kv)·(d + 1);
- attention (sdpa) keeps q, k, v and its output in ``c`` and the fp32 log-sum-exp of each query
  head: c·d·(2·n_q + 2·n_kv′) + 4·n_q, where ``n_kv′`` is ``n_kv`` when sdpa takes grouped heads
  (CPU, where prerl/models/loading.py turns it on) and ``n_q`` when transformers repeats the key/value heads
  first (CUDA with a padding mask);
- the MLP keeps gate and up's outputs, the activation's output and their product: 4·I·c;
- and once per layer, not per token: the padding mask, which transformers hands sdpa as booleans and
  sdpa turns into an additive mask of the query's dtype at every call: an [S, S] mask per row, T·S·c.

Outside the layers: the token ids (8 bytes a token), the rotary tables (2·S·d in the weights' dtype),
the final norm (4·H + 4), the LM head's
input (H·c) and the logits (V·c) of every position that predicts a response token (``logits_to_keep``:
at most T), and prerl/train/logprobs.py's per-position log-sum-exp, entropy and log-prob in fp32 and a
gather index (20 bytes).

With gradient checkpointing (transformers' non-reentrant checkpoint of each decoder layer) only the
layers' inputs stay (H bytes of the weights' dtype a token, the residual stream), and the backward
recomputes one layer at a time. The backward's own buffers peak in one of three places:

- the chunked log-softmax's backward (prerl/train/logprobs.py): the logits' gradient (V·c a position)
  beside two or three fp32 buffers of one chunk (``CHUNK_ELEMENTS`` logits at most);
- the LM head's backward: the logits' gradient, the head's weight gradient in ``c`` and, under
  autocast, its fp32 copy (V·H each), and the input gradient;
- a decoder layer's backward: the residual stream's gradient (H in the weights' dtype, and its copy
  in ``c`` under autocast) beside the MLP's product backward (two MLP-wide gradients more than the
  forward kept) or the down projection's (its input gradient, and its weight gradient in ``c`` and
  fp32).
"""

from __future__ import annotations

from dataclasses import dataclass

from prerl.plan.shapes import ModelShape
from prerl.train.logprobs import CHUNK_ELEMENTS

TOKEN_ID = 8  # int64, kept by the embedding's backward
PER_SCORED_POSITION = 3 * 4 + 8  # log-sum-exp, entropy and log-prob in fp32, and a gather index


@dataclass(frozen=True)
class Precision:
    """Bytes per element: ``weights`` (``model.dtype``, also the residual stream), ``compute``
    (``model.autocast``, else the weights'), and whether linears cast their inputs (autocast to
    another dtype than the weights')."""

    weights: int
    compute: int
    casts: bool


@dataclass(frozen=True)
class MicroBatch:
    tokens: int  # T: tokens of one forward, padding included
    width: int  # S: the longest row, at most min(T, longest prompt + response)
    on_gpu: bool  # CUDA: key/value heads repeated before sdpa, the backward in its own thread
    scored: int = 0  # positions whose logits are kept (they predict a response token); 0 = all T

    @property
    def kept(self) -> int:
        return self.scored or self.tokens

    @property
    def grouped_kv(self) -> bool:
        """sdpa takes grouped key/value heads: on a CPU (prerl/models/loading.py asks transformers to pass them)."""
        return not self.on_gpu


def norm_bytes(width: int) -> int:
    """prerl/models/rms_norm.py keeps x̂ and r in fp32 for each token."""
    return 4 * width + 4


def layer_bytes(s: ModelShape, p: Precision, mb: MicroBatch) -> int:
    """What autograd keeps of one decoder layer for a micro-batch: per token, and its padding mask."""
    return mb.tokens * (layer_bytes_per_token(s, p, mb.grouped_kv) + mb.width * p.compute)


def layer_bytes_per_token(s: ModelShape, p: Precision, grouped_kv: bool) -> int:
    """What autograd keeps of one decoder layer per token, the mask aside (module docstring)."""
    c, d = p.compute, s.head_dim
    kv_att = s.kv_heads if grouped_kv else s.heads
    norms = 2 * norm_bytes(s.hidden)
    linear_inputs = (5 if p.casts else 2) * s.hidden * c
    qk_norm = 4 * (s.heads + s.kv_heads) * (d + 1) if s.qk_norm else 0
    attention = c * d * (2 * s.heads + 2 * kv_att) + 4 * s.heads
    mlp = 4 * s.intermediate * c
    return norms + linear_inputs + qk_norm + attention + mlp


def saved_bytes(s: ModelShape, p: Precision, mb: MicroBatch, checkpointing: bool) -> int:
    """Every tensor autograd keeps after the forward of one micro-batch (the loss computed)."""
    t, k = mb.tokens, mb.kept
    layers = t * s.hidden * p.weights if checkpointing else layer_bytes(s, p, mb)
    outside = t * (TOKEN_ID + norm_bytes(s.hidden)) + k * ((s.hidden + s.vocab) * p.compute + PER_SCORED_POSITION)
    return s.layers * layers + outside + 2 * mb.width * s.head_dim * p.weights  # and the rotary tables


def chunk_bytes(s: ModelShape, tokens: int) -> int:
    """One fp32 work buffer of the chunked log-softmax: ``CHUNK_ELEMENTS`` logits, or all of them."""
    return 4 * min(tokens * s.vocab, max(CHUNK_ELEMENTS, s.vocab))


def log_softmax_buffers(s: ModelShape, p: Precision, mb: MicroBatch) -> int:
    """Two fp32 chunks at a time (logsumexp's difference and exponential; the probabilities and the
    gradient), and a third for the scaled fp32 copy unless the logits are fp32 already (T = 1)."""
    return (2 + (p.compute != 4)) * chunk_bytes(s, mb.kept)


def deferred_weight_grads(s: ModelShape, p: Precision, mb: MicroBatch, checkpointing: bool) -> int:
    """Compute-dtype weight gradients that wait for the end of the backward. torch.autocast caches each
    weight's cast for the whole block, so the cast's backward node is older than everything the forward
    made after it, and the autograd engine, which runs the newest ready node first, reaches it last. The
    checkpointed layers' casts are redone when they are recomputed; on a GPU that runs in the backward's
    own thread, whose autocast cache starts empty, so their gradients return at once, and only the
    layers that are not recomputed (the LM head) wait."""
    if not p.casts:
        return 0
    waiting = s.linear_params - (s.layers * s.layer_linear_params if checkpointing and mb.on_gpu else 0)
    return waiting * p.compute


def backward_transient(s: ModelShape, p: Precision, mb: MicroBatch, checkpointing: bool) -> int:
    """The largest set of buffers the backward holds beside the saved tensors, from its start (module
    docstring); what waits for the end is ``end_of_backward``."""
    t, c, w = mb.tokens, p.compute, p.weights
    logits_grad = mb.kept * s.vocab * c
    log_softmax = logits_grad + log_softmax_buffers(s, p, mb)
    head = logits_grad + s.vocab * s.hidden * c + mb.kept * s.hidden * c
    # a layer's backward, at the MLP's product (its gradient and the two it makes, the down projection's
    # input freed) or at the down projection (input and weight gradients; a recomputed layer's weight
    # gradient cast back at once on a GPU); the residual stream's gradient beside them, and under autocast
    # its compute-dtype copy
    recast = w if p.casts and checkpointing and mb.on_gpu else 0
    residual = t * s.hidden * (w + (c if p.casts else 0))
    product = 2 * t * s.intermediate * c
    down = t * s.intermediate * c + s.intermediate * s.hidden * (c + recast)
    layer = residual + max(product, down)
    if checkpointing:  # the recomputed layer's saved tensors, and on a GPU its fresh casts, are alive
        layer += layer_bytes(s, p, mb) + (s.layer_linear_params * c if recast else 0)
    return max(log_softmax, head, layer)


def end_of_backward(s: ModelShape, p: Precision, mb: MicroBatch, checkpointing: bool) -> int:
    """The deferred weight gradients while they are cast back to the weights' dtype one at a time: at
    worst the largest one's copy beside all of them; by then the activations are freed."""
    waiting = deferred_weight_grads(s, p, mb, checkpointing)
    return waiting + s.largest_tensor * p.weights if waiting else 0


def forward_transient(s: ModelShape, p: Precision, mb: MicroBatch) -> int:
    """The chunked log-softmax's forward (its work buffers)."""
    return log_softmax_buffers(s, p, mb)


def update_peak(s: ModelShape, p: Precision, mb: MicroBatch, checkpointing: bool) -> int:
    """The activations of one micro-batch at their peak: saved tensors and the larger transient at the
    start of the backward, or the deferred weight gradients at its end."""
    transient = max(forward_transient(s, p, mb), backward_transient(s, p, mb, checkpointing))
    return max(saved_bytes(s, p, mb, checkpointing) + transient, end_of_backward(s, p, mb, checkpointing))


def no_grad_peak(s: ModelShape, p: Precision, mb: MicroBatch) -> int:
    """A forward without gradient (scoring log-probs or values): one layer's buffers at a time, the
    logits and the log-softmax's chunks."""
    t = mb.tokens
    layer = t * (2 * s.hidden * p.weights + 3 * s.intermediate * p.compute)
    return layer + t * s.vocab * p.compute + log_softmax_buffers(s, p, mb)
