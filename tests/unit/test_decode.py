"""The transformers engine's sampler (prerl/rollout/decode.py) and its plain-op step (prerl/rollout/plain_step.py)
on tiny models built in the test: draws within top-p, the rows a compaction moves, what the plain step
computes, that it follows the weights, and its bf16 copies under autocast (the loop and the step on the
micro model: tests/integration/test_decode_models.py)."""

from __future__ import annotations

import math

import pytest
import torch
from helpers import LOGIT_TOLERANCE, steps_side_by_side, tiny_llama, tiny_qwen3

from prerl.models.loading import cache_kwargs
from prerl.rollout import decode, plain_step
from prerl.rollout.decode import sample, sample_next


def test_sample_next_draws_from_the_softmax_within_top_p():
    torch.manual_seed(0)
    logits = torch.log(torch.tensor([[0.6, 0.3, 0.1]])).expand(20000, 3)
    counts = torch.bincount(sample_next(logits, 1.0, 1.0), minlength=3).float() / 20000
    assert torch.allclose(counts, torch.tensor([0.6, 0.3, 0.1]), atol=0.015)
    assert set(sample_next(logits, 1.0, 0.5).tolist()) == {0}  # 0.6 alone reaches 0.5
    nucleus = torch.bincount(sample_next(logits, 1.0, 0.8), minlength=3).float() / 20000
    assert nucleus[2] == 0 and math.isclose(float(nucleus[0]), 2 / 3, abs_tol=0.015)
    assert set(sample_next(logits, 0.0, 1.0).tolist()) == {0}  # temperature 0: greedy
    # tokens without mass, first, between and last, are never drawn; the two with mass half the time each
    masked = torch.tensor([[-math.inf, 0.0, -math.inf, 0.0, -math.inf]]).expand(20000, 5)
    draws = torch.bincount(sample_next(masked, 1.0, 1.0), minlength=5).float() / 20000
    assert draws[[0, 2, 4]].sum() == 0 and math.isclose(float(draws[1]), 0.5, abs_tol=0.015)


@torch.inference_mode()
@pytest.mark.parametrize("make", [tiny_qwen3, tiny_llama], ids=["qwen3", "llama"])
def test_plain_step_follows_the_weights(make):
    """The step reads the current parameters (the policy changes between rollouts; the fused projections
    are rebuilt per rollout) and gives the module stack's logits for both architectures it covers
    (Llama: no q/k norms, the attention's scaling in the query projection)."""
    torch.manual_seed(0)
    model = make().eval()
    prompts = [[3, 4, 5, 6], [7, 8]]
    assert plain_step.supports(model)
    before = steps_side_by_side(model, prompts, 6)[0][0]
    for p in model.parameters():
        p.add_(0.05 * torch.randn_like(p))
    after = steps_side_by_side(model, prompts, 6)
    assert not torch.allclose(before, after[0][0])
    assert all(torch.allclose(a, b, rtol=0, atol=LOGIT_TOLERANCE) for a, b in after)


@torch.inference_mode()
def test_plain_step_covers_only_the_arithmetic_it_computes():
    """Models whose step differs (projection biases, other rotary embeddings, other architectures) use the
    module step, and still sample."""
    model = tiny_qwen3()
    model.config.attention_bias = True  # a Qwen3 with projection biases: not this step's arithmetic
    assert not plain_step.supports(model)
    llama = tiny_llama()
    llama.config.rope_parameters = {"rope_type": "llama3", "rope_theta": 10000.0}
    assert not plain_step.supports(llama)
    from transformers import GPT2Config, GPT2LMHeadModel

    gpt2 = GPT2LMHeadModel(GPT2Config(vocab_size=48, n_embd=32, n_layer=1, n_head=2, n_positions=64))
    assert not plain_step.supports(gpt2)
    rows = sample(gpt2.eval(), [[3, 4, 5, 6], [7, 8]], 2, 1.0, 1.0, 5, eos_id=2, pad_id=0)
    assert len(rows) == 4 and all(1 <= len(r) <= 5 for r in rows)


def test_compaction_moves_only_rows_from_beyond_the_kept_front():
    finished = torch.tensor([False, True, False, True, False, False, True, False])
    order = decode.compaction(finished)
    assert sorted(order.tolist()) == [0, 2, 4, 5, 7]  # every unfinished row, once
    moved = order != torch.arange(len(order))
    assert order[~moved].tolist() == [0, 2, 4] and bool((order[moved] >= len(order)).all())
    assert decode.compaction(torch.zeros(3, dtype=torch.bool)).tolist() == [0, 1, 2]


@torch.inference_mode()
def test_under_bf16_autocast_the_plain_step_multiplies_bf16_copies_made_once():
    """On a CPU the step copies every weight once per rollout in the compute dtype, so autocast casts no
    weight at any token; its logits stay those of the module stack under the same autocast, to bf16
    rounding: 8 significant bits, so each rounding is off by at most 2^-9 relative, a few dozen of them
    per logit of this 2-layer model whose logits stay below 1 — far below 0.05, which a wrong weight,
    scaling or position exceeds."""
    torch.manual_seed(0)
    model = tiny_llama().eval()
    prompts = [[3, 4, 5, 6], [7, 8]]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        pairs = steps_side_by_side(model, prompts, 6)
        cache = decode.preallocated_cache(model, 12)
        model(input_ids=torch.tensor([[3, 4, 5, 6]]), **cache_kwargs(model, cache))
        step = decode.decode_step(model, cache, torch.ones((1, 12), dtype=torch.long))
    weights = step.qkv + step.o + step.gate_up + step.down + [step.head]
    assert {w.dtype for w in weights} == {torch.bfloat16} and all(w.is_contiguous() for w in weights)
    assert all(torch.allclose(a.float(), b.float(), rtol=0, atol=0.05) for a, b in pairs)
    assert max(float(b.abs().max()) for _, b in pairs) < 1
