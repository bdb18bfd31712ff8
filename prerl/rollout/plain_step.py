"""One decode step of a Qwen3 or Llama model in plain torch ops, for the transformers engine's sampling loop.

The two architectures share everything the step computes (RMSNorm, grouped-query attention with the
default rotary embedding, SiLU-gated MLP, tied or untied head) except that Qwen3 normalises each query
and key head (``q_norm``, ``k_norm``) and Llama does not.

Why not the model's own forward: on a small model a one-token step through transformers' module stack
is mostly not matmuls but module calls, mask building, cache bookkeeping and the CPU flash-attention
kernel's set-up for a one-token query (``benchmarks/bench.py --profile`` splits a step by kind of op;
docs/performance.md#where-the-time-goes-now). This step

- reads the model's own parameters at every call (it always samples the current policy), with the
  q/k/v and the gate/up projections concatenated once per rollout into one matmul each;
- multiplies by every weight as a right factor [in, out] (``h @ W``) stored contiguous: on a CPU, MKL's
  product then runs faster than ``F.linear``'s transposed view of [out, in] (docs/LOG.md, round f4712cc → 59358e9).
  The concatenated weights are copies anyway; on a CPU the others (o, down, LM head) are copied once
  per rollout too, all in the compute dtype (bf16 under ``model.autocast``, so autocast does not cast
  the whole model again at every token); on a GPU they stay views (no faster there, and the copy would
  cost memory);
- normalises (RMSNorm) in four kernels, √d folded into the norms' weights;
- attends with two batched matmuls over the preallocated KV cache (grouped-query heads as a view,
  never repeated in memory), the left padding of the prompts masked by an additive bias;
- computes the rotary angles once per step, not once per layer, and normalises and rotates queries
  and keys together (the attention's 1/√D folded into the query norm's weight, or for Llama into the
  query projection's columns).

The arithmetic is transformers' ``modeling_qwen3`` and ``modeling_llama`` (RMSNorm in fp32, Qwen3's q/k
norms, rotary embedding, SiLU-gated MLP, tied or untied head); only the order of some sums differs (fused projections,
attention by matmul rather than the flash kernel), so logits agree with the module stack to rounding,
not bit for bit (tests/unit/test_decode.py, tests/integration/test_decode_models.py). Models of other shapes
use the module stack (``prerl.rollout.decode.ModuleStep``).
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import functional as F

ARCHITECTURES = ("Qwen3ForCausalLM", "LlamaForCausalLM")


def supports(model) -> bool:
    """Whether ``model`` is a Qwen3 or Llama causal LM whose decode step this module computes exactly:
    full attention in every layer, no projection biases, SiLU MLP, the default rotary embedding."""
    config = model.config
    rope = getattr(config, "rope_parameters", None) or {}
    return (
        type(model).__name__ in ARCHITECTURES
        and config.hidden_act == "silu"
        and not config.attention_bias
        and not getattr(config, "mlp_bias", False)
        and getattr(config, "pretraining_tp", 1) == 1
        and all(kind == "full_attention" for kind in getattr(config, "layer_types", None) or [])
        and rope.get("rope_type", "default") == "default"
    )


def _rms_norm(x: Tensor, scaled_weight: Tensor, root_d_eps: Tensor) -> Tensor:
    """RMSNorm with √d folded into the weight (``PlainStep``, once per rollout): w·x/√(mean(x²) + ε)
    = (w·√d)·x/hypot(‖x‖, √(d·ε)), normalised in fp32, scaled in the input's dtype. Four kernels
    (norm, hypot, divide, scale) where the module runs seven: a decode step is ~100 small kernels a
    token, so each one saved counts (docs/LOG.md, round 59358e9 → 1e198db)."""
    x32 = x.float()
    return scaled_weight * (x32 / torch.linalg.vector_norm(x32, dim=-1, keepdim=True).hypot_(root_d_eps)).to(x.dtype)


def _compute_dtype(weight: Tensor) -> torch.dtype:
    """The dtype the step's matmuls run in: the autocast dtype when autocast is on (``model.autocast``),
    else the weights' own."""
    kind = weight.device.type
    return torch.get_autocast_dtype(kind) if torch.is_autocast_enabled(kind) else weight.dtype


def _right_factor(weight: Tensor) -> Tensor:
    """``weight`` [out, in] as the right factor [in, out] of ``h @ W``: on a CPU a contiguous copy in the
    compute dtype, made once per rollout, so that autocast does not cast every weight again at every token
    (a pass over the whole model per token); on a GPU a view, cast per call as transformers' own forward
    is (a persistent copy would cost memory)."""
    if weight.device.type != "cpu":
        return weight.t()
    return weight.t().to(_compute_dtype(weight)).contiguous()


def _fused_right_factor(weights: list[Tensor]) -> Tensor:
    """Several projections of one input side by side: ``cat`` of their right factors (a copy anyway), in
    the compute dtype on a CPU (``_right_factor``)."""
    fused = torch.cat([w.t() for w in weights], dim=1)
    return fused.to(_compute_dtype(fused)) if fused.device.type == "cpu" else fused


class PlainStep:
    """``step(token, position, length)`` → next-token logits [B, V] for one new token per row, whose
    keys and values go to cache position ``length``; ``keys``/``values`` are per-layer buffers
    [B, kv_heads, capacity, head_dim] already holding the prompts (positions < ``length``)."""

    def __init__(self, model, keys: list[Tensor], values: list[Tensor], attend: Tensor):
        config = model.config
        self.model, self.keys, self.values = model, keys, values
        self.heads, self.kv_heads = config.num_attention_heads, config.num_key_value_heads
        self.head_dim = getattr(config, "head_dim", None) or config.hidden_size // self.heads
        # RMSNorm weights times √width, and √(width·ε) (``_rms_norm``): per layer (input, post-attention)
        d, D = config.hidden_size, self.head_dim
        self.root_d_eps, self.root_head_eps = (
            torch.tensor((n * config.rms_norm_eps) ** 0.5, device=attend.device) for n in (d, D)
        )
        self.norms = [
            (layer.input_layernorm.weight * d**0.5, layer.post_attention_layernorm.weight * d**0.5)
            for layer in model.model.layers
        ]
        self.final_norm = model.model.norm.weight * d**0.5
        # additive attention bias over cache positions: 0 where attended, −inf on prompt padding
        self.bias = torch.zeros(attend.shape, dtype=torch.float32, device=attend.device)
        self.bias.masked_fill_(attend == 0, float("-inf"))
        # per layer, built once per rollout from the current parameters: the projections as right factors
        # [in, out] (q/k/v and gate/up fused). The attention's 1/√D scaling is applied before the rotation
        # (which is linear): Qwen3 has it in its q/k norm table (the norms' weights as one
        # [heads + kv_heads, D] table times √D, ``_rms_norm``, the queries' rows times 1/√D); Llama, which
        # has no q/k norms, in the query projection's columns.
        self.qkv, self.o, self.gate_up, self.down = [], [], [], []
        self.qk_norm: list[Tensor | None] = []
        for layer in model.model.layers:
            a, mlp = layer.self_attn, layer.mlp
            normed = hasattr(a, "q_norm")
            q = a.q_proj.weight if normed else a.q_proj.weight * a.scaling
            self.qkv.append(_fused_right_factor([q, a.k_proj.weight, a.v_proj.weight]))
            self.o.append(_right_factor(a.o_proj.weight))
            self.gate_up.append(_fused_right_factor([mlp.gate_proj.weight, mlp.up_proj.weight]))
            self.down.append(_right_factor(mlp.down_proj.weight))
            if normed:
                q_rows = (a.q_norm.weight * a.scaling).expand(self.heads, -1)
                self.qk_norm.append(torch.cat([q_rows, a.k_norm.weight.expand(self.kv_heads, -1)]) * D**0.5)
            else:
                self.qk_norm.append(None)
        self.head = _right_factor(model.lm_head.weight)  # tied or not: the head's own weight
        rotary = model.model.rotary_emb
        self.inv_freq, self.rope_scale = rotary.inv_freq.float(), rotary.attention_scaling
        half = self.head_dim // 2  # rotate_half(x) = [−x₂, x₁] = roll(x, D/2) · [−1…, +1…]
        self.rotation_sign = torch.cat([-torch.ones(half), torch.ones(half)]).to(rotary.inv_freq.device)

    def keep(self, order: Tensor) -> None:
        """Keep the rows ``order`` (``decode.compaction``: rows that move come from beyond
        ``len(order)``): only they are copied, into the places they take, and the buffers shrink to a
        view of their front."""
        moved = (order != torch.arange(len(order), device=order.device)).nonzero().squeeze(-1)
        sources = order[moved]
        for buffer in (*self.keys, *self.values, self.bias):
            buffer[moved] = buffer[sources]
        n = len(order)
        self.keys, self.values = [k[:n] for k in self.keys], [v[:n] for v in self.values]
        self.bias = self.bias[:n]

    def __call__(self, token: Tensor, position: Tensor, length: int) -> Tensor:
        inner = self.model.model
        x = F.embedding(token, inner.embed_tokens.weight)  # [B, hidden]
        freqs = position.float().unsqueeze(-1) * self.inv_freq
        angles = torch.cat((freqs, freqs), dim=-1).unsqueeze(1)  # [B, 1, D]
        cos = (angles.cos() * self.rope_scale).to(x.dtype)
        sin = (angles.sin() * self.rope_scale * self.rotation_sign).to(x.dtype)
        bias = self.bias[:, None, None, : length + 1]
        for i, (norm_in, norm_post) in enumerate(self.norms):
            h = _rms_norm(x, norm_in, self.root_d_eps)
            x = x + self._attention(i, h, cos, sin, bias, length)
            h = _rms_norm(x, norm_post, self.root_d_eps)
            gate, up = (h @ self.gate_up[i]).chunk(2, dim=-1)
            x = x + (F.silu(gate) * up) @ self.down[i]
        return _rms_norm(x, self.final_norm, self.root_d_eps) @ self.head

    def _attention(self, i: int, h: Tensor, cos: Tensor, sin: Tensor, bias: Tensor, length: int) -> Tensor:
        B, D, H, KV = h.shape[0], self.head_dim, self.heads, self.kv_heads
        qkv = h @ self.qkv[i]
        qk, qk_norm = qkv[:, : (H + KV) * D].view(B, H + KV, D), self.qk_norm[i]
        if qk_norm is not None:
            qk = _rms_norm(qk, qk_norm, self.root_head_eps)
        qk = qk * cos + qk.roll(D // 2, dims=-1) * sin  # the rotary embedding of queries and keys at once
        self.keys[i][:, :, length] = qk[:, H:]
        self.values[i][:, :, length] = qkv[:, (H + KV) * D :].view(B, KV, D)
        keys, values = self.keys[i][:, :, : length + 1], self.values[i][:, :, : length + 1]
        q = qk[:, :H].view(B, KV, H // KV, D)  # query heads grouped under their key/value head
        scores = torch.matmul(q, keys.transpose(-1, -2)) + bias  # [B, KV, H/KV, length + 1]
        weights = torch.softmax(scores, dim=-1, dtype=torch.float32).to(q.dtype)
        return torch.matmul(weights, values).reshape(B, H * D) @ self.o[i]
