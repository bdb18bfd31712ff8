"""The transformers engine's sampling loop (prerl/rollout/decode.py), its plain-op Qwen3 and Llama step
(prerl/rollout/plain_step.py) against the model's own forward, and the sampler."""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor

from helpers import compose_config, tiny_llama, tiny_qwen3, to_run
from prerl.models.loading import cache_kwargs, load_policy
from prerl.rollout import decode, plain_step
from prerl.rollout.decode import sample, sample_next

# Logits of size ~10 computed in fp32 with sums in another order differ by ~1e-5 (a few ulps of each
# partial sum, over four layers); a stale cache, a wrong position or a missed mask is off by > 0.1.
LOGIT_TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def policy(tmp_path_factory, cache_dir):
    cfg, _ = to_run(compose_config([], tmp_path_factory.mktemp("decode"), cache_dir))
    model, tokenizer = load_policy(cfg.model, cfg.cache_dir, torch.device("cpu"))
    return model.eval(), tokenizer


def prompts_of(tokenizer) -> list[list[int]]:
    texts = ["12+7=", "3+45=", "100+1="]  # different lengths: left padding is exercised
    return [tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]


@pytest.mark.parametrize("plain_decode", [True, False], ids=["plain", "modules"])
def test_greedy_picks_the_top_token_at_every_position(policy, plain_decode):
    """Greedy rows, decoded with a shared KV cache over left-padded prompts, pick a top token of the full
    forward at every position, and stop after the first EOS. The two computations order their sums
    differently, so "top" is within 1e-4 of the best logit (fp32 rounding of logits of size ~10 is
    ~1e-5): a stale cache or a wrong position would give tokens far below the top."""
    model, tok = policy
    prompts, n, new = prompts_of(tok), 2, 24
    ours = sample(model, prompts, n, 0.0, 1.0, new, tok.eos_token_id, tok.pad_token_id, plain_decode)
    for i, p in enumerate(prompts):
        for row in ours[n * i : n * i + n]:
            assert row and tok.eos_token_id not in row[:-1] and (len(row) == new or row[-1] == tok.eos_token_id)
            with torch.no_grad():  # one prompt, no padding: the reference computation
                logits = model(input_ids=torch.tensor([p + row])).logits[0, len(p) - 1 : -1]
            chosen = logits.gather(-1, torch.tensor(row).unsqueeze(-1)).squeeze(-1)
            assert torch.all(chosen >= logits.max(-1).values - LOGIT_TOLERANCE), (p, row)


def test_sampled_rows_stop_at_eos_or_the_length_limit(policy):
    model, tok = policy
    torch.manual_seed(0)
    rows = sample(model, prompts_of(tok), 8, 1.0, 1.0, 16, tok.eos_token_id, tok.pad_token_id)
    assert len(rows) == 24
    for row in rows:
        assert 1 <= len(row) <= 16
        assert tok.eos_token_id not in row[:-1]
        assert len(row) == 16 or row[-1] == tok.eos_token_id


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


def test_preallocated_cache_gives_the_tokens_of_transformers_dynamic_cache(policy, monkeypatch):
    """The same arithmetic on the same numbers: writing into a preallocated buffer instead of
    concatenating changes no logit, so the same seed draws the same tokens, finished rows dropped and all."""
    from transformers import DynamicCache

    from prerl.rollout import decode

    model, tok = policy
    args = (model, prompts_of(tok), 8, 1.0, 1.0, 24, tok.eos_token_id, tok.pad_token_id, False)  # module step
    torch.manual_seed(3)
    ours = sample(*args)
    monkeypatch.setattr(decode, "preallocated_cache", lambda m, capacity: DynamicCache(config=m.config))
    torch.manual_seed(3)
    assert sample(*args) == ours
    assert any(len(r) < 24 for r in ours) and any(len(r) > 1 for r in ours)  # rows left the batch mid-way


def _steps_side_by_side(model, prompts: list[list[int]], new: int) -> list[tuple[Tensor, Tensor]]:
    """The logits of the plain step and of the module step fed the same tokens (greedy by the module
    step's), over left-padded ``prompts``, rows leaving the batch half-way."""
    width = max(map(len, prompts))
    ids = torch.tensor([[0] * (width - len(p)) + p for p in prompts])
    attend = torch.ones((len(prompts), width + new), dtype=torch.long)
    for i, p in enumerate(prompts):
        attend[i, : width - len(p)] = 0
    position = (attend[:, :width].cumsum(-1) - 1).clamp(min=0)
    steps = []
    for _ in range(2):
        cache = decode.preallocated_cache(model, width + new)
        out = model(
            input_ids=ids, attention_mask=attend[:, :width], position_ids=position, **cache_kwargs(model, cache)
        )
        steps.append((decode.decode_step(model, cache, attend, plain_decode=len(steps) == 0), out.logits[:, -1]))
    (plain, _), (modules, logits) = steps
    assert isinstance(plain, plain_step.PlainStep) and isinstance(modules, decode.ModuleStep)
    pos, pairs = position[:, -1] + 1, []
    for t in range(new - 1):
        token = logits.argmax(-1)
        if t == new // 2:  # the first row finishes and leaves, as in the loop
            order = decode.compaction(torch.arange(len(token)) == 0)
            plain.keep(order), modules.keep(order)
            token, pos = token[order], pos[order]
        logits = modules(token, pos, width + t)
        pairs.append((plain(token, pos, width + t), logits))
        pos = pos + 1
    return pairs


@torch.inference_mode()
def test_plain_qwen3_step_computes_the_modules_logits(policy):
    """Token by token, the plain-op step gives the model's own logits to rounding: same cache
    positions, rotary angles, masks of the left padding, grouped-query heads and dropped rows."""
    model, tok = policy
    pairs = _steps_side_by_side(model, prompts_of(tok), 16)
    for plain, modules in pairs:
        assert plain.shape == modules.shape
        assert torch.allclose(plain, modules, rtol=0, atol=LOGIT_TOLERANCE), float((plain - modules).abs().max())
    assert pairs[-1][0].shape[0] == len(prompts_of(tok)) - 1


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
    before = _steps_side_by_side(model, prompts, 6)[0][0]
    for p in model.parameters():
        p.add_(0.05 * torch.randn_like(p))
    after = _steps_side_by_side(model, prompts, 6)
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
        pairs = _steps_side_by_side(model, prompts, 6)
        cache = decode.preallocated_cache(model, 12)
        model(input_ids=torch.tensor([[3, 4, 5, 6]]), **cache_kwargs(model, cache))
        step = decode.decode_step(model, cache, torch.ones((1, 12), dtype=torch.long))
    weights = step.qkv + step.o + step.gate_up + step.down + [step.head]
    assert {w.dtype for w in weights} == {torch.bfloat16} and all(w.is_contiguous() for w in weights)
    assert all(torch.allclose(a.float(), b.float(), rtol=0, atol=0.05) for a, b in pairs)
    assert max(float(b.abs().max()) for _, b in pairs) < 1
