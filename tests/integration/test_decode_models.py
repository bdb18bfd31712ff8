"""The transformers engine's sampling loop (prerl/rollout/decode.py) and its plain-op Qwen3 step
(prerl/rollout/plain_step.py) on the micro model, against the model's own forward and transformers' cache."""

from __future__ import annotations

import pytest
import torch
from helpers import LOGIT_TOLERANCE, compose_config, steps_side_by_side, to_run

from prerl.models.loading import load_policy
from prerl.rollout.decode import sample


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


@torch.inference_mode()
def test_plain_qwen3_step_computes_the_modules_logits(policy):
    """Token by token, the plain-op step gives the model's own logits to rounding: same cache
    positions, rotary angles, masks of the left padding, grouped-query heads and dropped rows."""
    model, tok = policy
    pairs = steps_side_by_side(model, prompts_of(tok), 16)
    for plain, modules in pairs:
        assert plain.shape == modules.shape
        assert torch.allclose(plain, modules, rtol=0, atol=LOGIT_TOLERANCE), float((plain - modules).abs().max())
    assert pairs[-1][0].shape[0] == len(prompts_of(tok)) - 1
