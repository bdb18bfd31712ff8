"""The transformers engine's sampling loop (prerl/rollout/decode.py) against ``model.generate``."""

from __future__ import annotations

import math

import pytest
import torch

from helpers import compose_config, to_run
from prerl.models import load_policy
from prerl.rollout.decode import sample, sample_next


@pytest.fixture(scope="module")
def policy(tmp_path_factory, cache_dir):
    cfg, _ = to_run(compose_config([], tmp_path_factory.mktemp("decode"), cache_dir))
    model, tokenizer = load_policy(cfg.model, cfg.cache_dir, torch.device("cpu"))
    return model.eval(), tokenizer


def prompts_of(tokenizer) -> list[list[int]]:
    texts = ["12+7=", "3+45=", "100+1="]  # different lengths: left padding is exercised
    return [tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]


def test_greedy_matches_generate(policy):
    model, tok = policy
    prompts, n, new = prompts_of(tok), 2, 24
    ours = sample(model, prompts, n, 0.0, 1.0, new, tok.eos_token_id, tok.pad_token_id)
    for i, p in enumerate(prompts):  # one prompt at a time: no padding on the reference side
        ref = model.generate(input_ids=torch.tensor([p]), attention_mask=torch.ones(1, len(p), dtype=torch.long),
                             do_sample=False, max_new_tokens=new, eos_token_id=tok.eos_token_id,
                             pad_token_id=tok.pad_token_id)[0, len(p):].tolist()
        if tok.eos_token_id in ref:
            ref = ref[: ref.index(tok.eos_token_id) + 1]
        assert ours[n * i] == ours[n * i + 1] == ref


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
