"""The analytic RMSNorm (prerl/models/rms_norm.py) against transformers' modules on tiny models: values and
gradients to rounding, bf16 input, and the module switch on a model (the config switch:
tests/integration/test_rms_norm_models.py)."""

from __future__ import annotations

import copy

import pytest
import torch
from helpers import tiny_qwen3
from transformers.models.qwen3.modeling_qwen3 import Qwen3RMSNorm

from prerl.models.rms_norm import rms_norm, use_analytic_rms_norm

U = 2.0**-24  # fp32 unit roundoff


def _reference(x, weight, eps=1e-6):
    module = Qwen3RMSNorm(x.shape[-1], eps=eps)
    module.weight.data.copy_(weight)
    return module


@pytest.mark.parametrize("shape", [(3, 7, 128), (3, 7, 4, 32)], ids=["hidden", "per-head"])
def test_values_and_gradients_agree_with_the_module_to_rounding(shape):
    """Both compute √Σx² (a sum of d terms) and the backward's mean(g·w·x̂) in another order: each
    element differs by at most a few (d + 8) ulps of the terms it is made of. A wrong formula (a
    missing term, r instead of r², a sum over the wrong axis) is off by the terms' own size."""
    torch.manual_seed(0)
    d = shape[-1]
    x = (torch.randn(shape) * 3).requires_grad_()
    weight = torch.rand(d) + 0.5
    grad = torch.randn(shape)
    module = _reference(x, weight)
    want = module(x)
    want_x, want_w = torch.autograd.grad(want, (x, module.weight), grad)

    w = weight.clone().requires_grad_()
    got = rms_norm(x, w, module.variance_epsilon)
    got_x, got_w = torch.autograd.grad(got, (x, w), grad)

    bound = 4 * (d + 8) * U
    r = (x.detach().pow(2).mean(-1, keepdim=True) + 1e-6).rsqrt()
    normed = x.detach() * r
    assert torch.all((got - want).abs() <= bound * (weight * normed).abs() + 1e-30)
    # ∂L/∂x = r·(g·w − x̂·mean(g·w·x̂)): the size of its two terms bounds the rounding
    gw = grad * weight
    terms = r * (gw.abs() + normed.abs() * (gw * normed).abs().mean(-1, keepdim=True))
    assert torch.all((got_x - want_x).abs() <= bound * terms)
    # ∂L/∂w = Σ_rows g·x̂: a sum of n = 21 or 84 rows
    rows = grad.reshape(-1, d).shape[0]
    assert torch.all((got_w - want_w).abs() <= 4 * (rows + d + 8) * U * (grad * normed).abs().reshape(-1, d).sum(0))


def test_bfloat16_input_is_normalised_in_fp32_and_scaled_in_bfloat16():
    torch.manual_seed(1)
    x = torch.randn(5, 64).bfloat16()
    weight = (torch.rand(64) + 0.5).bfloat16()
    want = _reference(x, weight).bfloat16()(x)
    got = rms_norm(x, weight, 1e-6)
    assert got.dtype == want.dtype == torch.bfloat16
    # the fp32 results differ by a few ulps of fp32; after the cast to bfloat16 at most one bf16 ulp
    assert torch.all((got.float() - want.float()).abs() <= 2.0**-7 * want.float().abs())


def test_a_switched_model_trains_like_the_original():
    """Every RMSNorm of a Qwen3 model switches (4 per layer: input, post-attention, q and k norms; and
    the final one); the parameters and state dict stay the same; logits and every parameter's gradient
    agree with the unswitched model to rounding; copies keep the switch; frozen weights get no gradient."""
    torch.manual_seed(2)
    original = tiny_qwen3()
    for module in original.modules():
        if isinstance(module, Qwen3RMSNorm):
            module.weight.data.uniform_(0.5, 1.5)
    model = copy.deepcopy(original)
    assert use_analytic_rms_norm(model) == 4 * original.config.num_hidden_layers + 1
    assert model.state_dict().keys() == original.state_dict().keys()
    assert all(isinstance(m, Qwen3RMSNorm) for m in model.modules() if "norm" in type(m).__name__.lower())

    ids = torch.randint(0, original.config.vocab_size, (3, 11))
    want, got = original(input_ids=ids).logits, model(input_ids=ids).logits
    # two layers of 32-wide sums in another order: well under 1e-4 of logits of size ~1
    assert torch.allclose(got, want, rtol=0, atol=1e-4 * want.abs().max().item())
    want.square().mean().backward()
    got.square().mean().backward()
    for (name, p), q in zip(original.named_parameters(), model.parameters()):
        assert (q.grad - p.grad).norm() <= 1e-4 * p.grad.norm() + 1e-12, name

    frozen = copy.deepcopy(model).requires_grad_(False)
    assert type(frozen.model.norm) is type(model.model.norm)
    x = torch.randn(2, 5, original.config.hidden_size, requires_grad=True)
    frozen.model.norm(x).sum().backward()
    assert x.grad is not None and frozen.model.norm.weight.grad is None
