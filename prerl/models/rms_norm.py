"""RMSNorm as one autograd function with a hand-written backward (``model.analytic_rms_norm``).

transformers' Llama-family RMSNorm is five elementwise ops whose autograd graph runs about twice as
many in the backward, each one pass over a [tokens × width] tensor; on the mini model's update
(CPU, memory-bound) that is a visible share of the step. Here the forward is three passes
(√Σx² in one ``vector_norm`` kernel, the scaling, the weight) and the backward four, from

    y = w ⊙ x̂,  x̂ = x · r,  r = 1/√(mean(x²) + ε)
    ∂L/∂x = r · (g_w − x̂ · mean(g_w ⊙ x̂)),  g_w = g ⊙ w;   ∂L/∂w = Σ_rows g ⊙ x̂

(fewer passes over the activations; the measurement is in docs/LOG.md, round 59358e9 → 1e198db). The arithmetic is the module's:
normalised in fp32, scaled by the weight in the input's dtype; only the order of some sums differs,
so values and gradients agree to rounding (tests/unit/test_rms_norm.py).

It replaces the forward of the RMSNorm classes listed in ``SUPPORTED`` (modules whose formula is
exactly the one above) by switching each instance's class to a subclass: parameters, state dicts and
copies stay as they were.
"""

from __future__ import annotations

import importlib

import torch
from torch import Tensor, nn

# transformers' RMSNorm classes whose forward is w · (x · rsqrt(mean(x²) + ε)) in fp32, cast back to
# the input's dtype before the weight (Gemma's 1 + w and Qwen3-Next's are other formulas)
SUPPORTED = {
    "transformers.models.qwen3.modeling_qwen3": "Qwen3RMSNorm",
    "transformers.models.qwen2.modeling_qwen2": "Qwen2RMSNorm",
    "transformers.models.llama.modeling_llama": "LlamaRMSNorm",
}


class RMSNormFunction(torch.autograd.Function):
    """``rms_norm(x, weight, eps)`` with the analytic backward above; saves x̂ and r (fp32)."""

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, eps: float) -> Tensor:
        x32 = x.float()
        # r from √Σx² (one ``vector_norm`` kernel, then [rows, 1]-sized ops): fewer passes than x.pow(2).mean()
        r = torch.linalg.vector_norm(x32, dim=-1, keepdim=True).square_().div_(x.shape[-1]).add_(eps).rsqrt_()
        normed = x32 * r
        ctx.save_for_backward(normed, r, weight)
        ctx.input_dtype = x.dtype
        return weight * normed.to(x.dtype)

    @staticmethod
    def backward(ctx, grad: Tensor):
        normed, r, weight = ctx.saved_tensors
        grad32 = grad.float()
        grad_weight = None
        if ctx.needs_input_grad[1]:
            grad_weight = (grad32 * normed).reshape(-1, normed.shape[-1]).sum(0).to(weight.dtype)
        grad_normed = grad32 * weight.float()
        dot = (grad_normed * normed).mean(-1, keepdim=True)
        grad_x = grad_normed.addcmul_(normed, dot, value=-1).mul_(r)
        return grad_x.to(ctx.input_dtype), grad_weight, None


def rms_norm(x: Tensor, weight: Tensor, eps: float) -> Tensor:
    return RMSNormFunction.apply(x, weight, eps)


class _AnalyticForward:
    """Mixed in ahead of a supported RMSNorm class: the same module, this forward."""

    weight: Tensor  # the RMSNorm class's own attributes
    variance_epsilon: float

    def forward(self, hidden_states: Tensor) -> Tensor:
        return rms_norm(hidden_states, self.weight, self.variance_epsilon)


_SUBCLASSES: dict[type, type] = {}


def _supported_classes() -> tuple[type, ...]:
    classes = []
    for module_name, class_name in SUPPORTED.items():
        try:
            classes.append(getattr(importlib.import_module(module_name), class_name))
        except (ImportError, AttributeError):  # an older or newer transformers without this model
            continue
    return tuple(classes)


def use_analytic_rms_norm(model: nn.Module) -> int:
    """Switch every supported RMSNorm module of ``model`` to the analytic function; returns how many."""
    supported = _supported_classes()
    switched = 0
    for module in model.modules():
        cls = type(module)
        if cls in supported:
            if cls not in _SUBCLASSES:
                name = f"Analytic{cls.__name__}"
                _SUBCLASSES[cls] = globals()[name] = type(name, (_AnalyticForward, cls), {"__module__": __name__})
            module.__class__ = _SUBCLASSES[cls]
            switched += 1
    return switched
