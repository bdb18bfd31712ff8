"""No wasted forward passes, without a run: zero-advantage samples are not forwarded, and grouped key/value
heads in SDPA give the repeated heads' logits and gradients on a tiny Qwen3 (the real steps on the micro
model: tests/integration/test_performance_paths_updates.py)."""

from __future__ import annotations

import torch


def test_zero_advantage_samples_are_not_forwarded():
    from prerl.train.logprobs import Sequences
    from prerl.train.update import UpdateBatch, trained_rows

    mask = torch.tensor([[1.0, 1.0], [1.0, 0.0], [0.0, 0.0], [1.0, 1.0]])
    adv = torch.tensor([[0.5, 0.5], [0.0, 0.0], [0.3, 0.3], [-1.0, -1.0]])  # row 2: dropped by the objective
    batch = UpdateBatch(Sequences(*(torch.zeros(4, 2),) * 2, torch.zeros(4), *(torch.zeros(4, 2),) * 2), adv, mask)
    assert trained_rows(batch, needs_all=False) == [0, 3]
    assert trained_rows(batch, needs_all=True) == [0, 1, 3]  # a KL or entropy term sees every kept token


def test_grouped_kv_heads_in_sdpa_give_the_repeated_heads_logits_and_gradients(monkeypatch):
    """``models.group_kv_heads_in_sdpa`` (CPU runs): transformers hands masked grouped-query attention to
    torch as it is instead of repeating the key/value heads; the forward and backward are the same up to
    fp32 summation order (a left-padded batch, so the mask path is the one taken)."""
    from helpers import tiny_qwen3

    from prerl.models.loading import group_kv_heads_in_sdpa

    torch.manual_seed(0)
    model = tiny_qwen3()
    ids = torch.randint(3, 48, (3, 9))
    mask = torch.ones_like(ids)
    mask[0, :4] = 0  # left padding: transformers builds a mask
    mask[1, :2] = 0

    def forward_and_grads():
        model.zero_grad()
        logits = model(input_ids=ids, attention_mask=mask).logits
        (logits * mask.unsqueeze(-1)).square().sum().backward()
        return logits.detach(), [p.grad.clone() for p in model.parameters()]

    monkeypatch.delenv("TRANSFORMERS_SDPA_FORCE_GQA", raising=False)
    repeated, repeated_grads = forward_and_grads()
    group_kv_heads_in_sdpa()
    import transformers.integrations.sdpa_attention as sdpa

    calls = []
    kernel = torch.nn.functional.scaled_dot_product_attention
    monkeypatch.setattr(
        sdpa.torch.nn.functional, "scaled_dot_product_attention", lambda *a, **k: calls.append(k) or kernel(*a, **k)
    )
    grouped, grouped_grads = forward_and_grads()
    assert calls and all(k.get("enable_gqa") for k in calls), "the grouped heads did not reach torch"
    keep = mask.bool()
    torch.testing.assert_close(grouped[keep], repeated[keep], rtol=0, atol=1e-5)
    for g, r in zip(grouped_grads, repeated_grads):
        torch.testing.assert_close(g, r, rtol=1e-4, atol=1e-6)
