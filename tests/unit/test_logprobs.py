"""Chunked log-probs and entropy (prerl/train/logprobs.py): the values and gradients of the full-vocabulary
softmax, with work buffers no larger than a chunk of positions."""

import math

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from prerl.train.logprobs import chunk_positions, next_token_logprobs

B, L, V = 3, 7, 64
U = 2.0**-24  # fp32 unit roundoff


def full_softmax(logits: torch.Tensor, targets: torch.Tensor, temperature: float):
    """The straightforward formula over the whole [B, L, V] tensor."""
    logp_all = torch.log_softmax(logits / temperature, dim=-1)
    entropy = -(logp_all.exp() * logp_all).sum(-1)
    return torch.gather(logp_all, -1, targets.unsqueeze(-1)).squeeze(-1), entropy


@pytest.mark.parametrize("temperature", [1.0, 0.7])
@pytest.mark.parametrize("entropy", ["none", "detached", "grad"])
def test_chunked_logprobs_and_entropy_match_the_full_softmax(entropy, temperature):
    gen = torch.Generator().manual_seed(0)
    logits = (2.0 * torch.randn(B, L, V, generator=gen)).requires_grad_()
    targets = torch.randint(V, (B, L), generator=gen)
    w_logp, w_ent = torch.randn(B, L, generator=gen), torch.randn(B, L, generator=gen)
    chunk_elements = 3 * B * V  # three positions a chunk: chunks of 3, 3 and 1
    assert chunk_positions(B, V, chunk_elements) == 3

    logp, ent = next_token_logprobs(logits, targets, temperature, entropy, chunk_elements)
    loss = (w_logp * logp).sum() + ((w_ent * ent).sum() if entropy == "grad" else 0.0)
    (grad,) = torch.autograd.grad(loss, logits)

    exact = logits.detach().double().requires_grad_()  # the reference in fp64: its own error is negligible
    ref_logp, ref_ent = full_softmax(exact, targets, temperature)
    ref_loss = (w_logp * ref_logp).sum() + ((w_ent * ref_ent).sum() if entropy == "grad" else 0.0)
    (ref_grad,) = torch.autograd.grad(ref_loss, exact)

    # Bounds on the fp32 error that hold for any summation order (U: unit roundoff; M = max|s|, s = logits/T).
    # s is off by 2U·M (T rounded to fp32, then the division), s_j − max by 6U·M after its own rounding, so
    # exp(s_j − max) is off by (6M + 1)U relative; a sum of V terms adds at most (V − 1)U relative to the sum
    # of their magnitudes, and each p_j is off by at most p_rel = (6M + V + 4)U relative.
    # lse = max + log Σ exp(s_j − max): (2M + 6M + V + 2)U, and U(M + log V) for adding the max back;
    # log p_y = s_y − lse adds 2U·M + U(2M + log V): (13M + V + 2 log V + 4)U in all.
    # H = lse − Σ p_j s_j: the products carry p_rel + 3U relative, their V-term sum adds (V − 1)U·Σ p_j|s_j|,
    # with Σ p_j|s_j| ≤ M; the last subtraction U·log V. value_tol bounds all three.
    M = float(logits.detach().abs().max()) / temperature
    p_rel = (6 * M + V + 4) * U
    value_tol = (13 * M + V + 2 * math.log(V) + 4) * U + M * (p_rel + (V + 2) * U) + math.log(V) * U
    # ∂loss/∂s_j = g(δ_jy − p_j) − g_H·p_j·b_j with b_j = s_j − lse + H: |b_j| ≤ 2M + log V, b_j is off
    # by at most 2·value_tol, and p_j ≤ 1. ∂s/∂logits = 1/T rounds once more.
    g_logp = float(w_logp.abs().max())
    g_ent = float(w_ent.abs().max()) if entropy == "grad" else 0.0
    per_s = g_logp * (p_rel + 2 * U) + g_ent * (2 * value_tol + (2 * M + math.log(V)) * (p_rel + 2 * U))
    grad_tol = per_s * (1 + U) / temperature

    torch.testing.assert_close(logp.double(), ref_logp.detach(), rtol=0, atol=value_tol)
    torch.testing.assert_close(grad.double(), ref_grad, rtol=0, atol=grad_tol)
    if entropy == "none":
        assert ent is None
    else:
        torch.testing.assert_close(ent.double(), ref_ent.detach(), rtol=0, atol=value_tol)
        assert ent.requires_grad == (entropy == "grad")  # a detached diagnostic adds nothing to the gradient


def test_chunks_cover_every_position_once_within_the_budget():
    assert chunk_positions(rows=4, vocab=151_936, chunk_elements=1 << 26) == 110
    assert chunk_positions(rows=64, vocab=151_936, chunk_elements=1 << 20) == 1  # at least one position
    assert chunk_positions(rows=8, vocab=300) == 27_962  # a small vocabulary: one chunk per micro-batch


class Allocations(TorchDispatchMode):
    """The bytes of every tensor an op allocates (an output that shares no storage with the inputs)."""

    def __init__(self):
        super().__init__()
        self.sizes: list[int] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        given = {t.untyped_storage().data_ptr() for t in _tensors((args, kwargs))}
        for t in _tensors(out):
            if t.untyped_storage().data_ptr() not in given:
                self.sizes.append(t.untyped_storage().nbytes())
        return out


def _tensors(tree):
    if isinstance(tree, torch.Tensor):
        yield tree
    elif isinstance(tree, (list, tuple)):
        for item in tree:
            yield from _tensors(item)
    elif isinstance(tree, dict):
        for item in tree.values():
            yield from _tensors(item)


@pytest.mark.parametrize("entropy", ["detached", "grad"])
def test_chunking_bounds_the_work_buffers(entropy):
    """Forward and backward allocate nothing larger than one chunk of fp32 logits, except the gradient of
    the logits themselves (which any backward returns); the full formula allocates several [B, L, V]."""
    rows, positions, vocab, chunk_elements = 2, 40, 1000, 2 * 5 * 1000
    logits = torch.randn(rows, positions, vocab).requires_grad_()
    targets = torch.randint(vocab, (rows, positions))
    full, chunk = logits.numel() * 4, chunk_elements * 4

    with Allocations() as chunked:
        logp, ent = next_token_logprobs(logits, targets, 0.7, entropy, chunk_elements)
        (logp.sum() + (ent.sum() if entropy == "grad" else 0.0)).backward()
    assert sorted(chunked.sizes)[-2] <= chunk < full  # everything but the largest fits a chunk
    assert max(chunked.sizes) == full  # the largest is the gradient, allocated once

    with Allocations() as plain:
        logp, ent = full_softmax(logits, targets, 0.7)
        (logp.sum() + (ent.sum() if entropy == "grad" else 0.0)).backward()
    assert sum(size >= full for size in plain.sizes) >= 3  # what the chunks avoid: the check can see it
