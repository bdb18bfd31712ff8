"""How the rollout engines are set up and bounded, in one process and without vLLM: the transformers
engine's KV budget per generate call, and the vLLM engine's start-up (the weight API it checks, torch's
thread count, the streamed weight push, a tensor-parallel group's seed) against a stand-in ``vllm`` module.
The vLLM settings' defaults from a composed run: tests/integration/test_engine_setup_run.py."""

import re
import sys
import types
import weakref

import pytest
import torch
from helpers import Tokenizer, hf_calls, tiny_qwen3

from prerl.config.schema import ConfigError, RolloutConfig, VLLMConfig
from prerl.rollout import make_engine

SUPPORTED = "vllm>=0.32,<0.33"  # what the engine's error names (prerl.rollout.vllm.SUPPORTED, pyproject.toml)


def test_transformers_engine_calls_stay_within_the_kv_budget():
    """Qwen3-scale responses (8,192 new tokens, 8 samples): each call's preallocated KV cache, sequences ×
    (prompt + max_new_tokens), stays within rollout.batch_tokens (2^17 by default), and every prompt is
    decoded once, in order."""
    budget = 2**17
    prompts = [[1] * (50 + 7 * i) for i in range(12)]
    calls = hf_calls(prompts, 8, 8192, RolloutConfig())
    assert [p for call in calls for p in call] == prompts
    assert max(8 * len(call) * (max(map(len, call)) + 8192) for call in calls) <= budget
    assert RolloutConfig().batch_tokens == budget


def test_transformers_engine_keeps_the_mini_configs_calls():
    """The mini configs' rollouts (8 samples of ≤ 96 tokens after prompts ≤ 64) fit the budget whole: calls
    still take rollout.batch_samples // n prompts, so their random draws, and results, are unchanged."""
    calls = hf_calls([[1] * 64] * 70, 8, 96, RolloutConfig())
    assert [len(c) for c in calls] == [32, 32, 6]


def test_transformers_engine_refuses_a_prompt_whose_samples_overflow_the_kv_budget():
    """``evaluate.py eval=math6``: 32 samples × (prompt + 8,192) positions of one prompt exceed any budget
    that fits next to training; the error says what to set instead of running out of memory mid-rollout."""
    with pytest.raises(ConfigError, match=r"one prompt's 32 samples is 268288 positions .*rollout\.batch_tokens="):
        hf_calls([[1] * 192] * 8, 32, 8192, RolloutConfig())


def test_vllm_seed_is_shared_by_a_tensor_parallel_group():
    from prerl.rollout import RunNeeds, ranks_per_engine
    from prerl.rollout.vllm import SUPPORTED as engine_range
    from prerl.rollout.vllm import engine_kwargs

    assert engine_range == SUPPORTED
    seeds = [
        engine_kwargs(VLLMConfig(tensor_parallel_size=2, seed=7), "float32", RunNeeds(), r)["seed"] for r in range(4)
    ]
    assert seeds == [7, 7, 8, 8]
    assert ranks_per_engine(RolloutConfig(engine="vllm", vllm=VLLMConfig(tensor_parallel_size=2))) == 2
    assert ranks_per_engine(RolloutConfig(engine="hf")) == 1


class Runner032:
    """vLLM 0.32's model runner: ``reload_weights(weights_iterator, weights_path, is_checkpoint_format)``.
    Copies what it is given and records how many of the tensors it was handed are still alive when it
    is handed the next (a list keeps all of them; a stream only the current one)."""

    def __init__(self):
        self.loaded, self.kinds, self.most_alive = {}, [], 0

    def reload_weights(self, weights_iterator=None, weights_path=None, is_checkpoint_format=True):
        self.kinds.append(type(weights_iterator).__name__)
        handed: list = []
        for name, tensor in weights_iterator:
            self.most_alive = max(self.most_alive, sum(ref() is not None for ref in handed))
            handed.append(weakref.ref(tensor))
            self.loaded[name] = tensor.detach().clone()
            del tensor


class Worker032:
    def __init__(self):
        self.model_runner = Runner032()

    def reload_weights(self, *args, **kwargs):  # vLLM 0.32's GPU worker passes them on
        self.model_runner.reload_weights(*args, **kwargs)


class OldWorker:
    def reload_weights(self):  # vLLM before the weights argument: reloads from disk
        pass


class Completion:
    """vLLM's CompletionOutput with ``logprobs=0``: the drawn token's log-prob at every position."""

    def __init__(self, index, token_ids):
        self.index, self.token_ids = index, token_ids
        self.logprobs = [{t: types.SimpleNamespace(logprob=-1.0)} for t in token_ids]


def fake_vllm(monkeypatch, worker) -> dict:
    """A ``vllm`` module whose ``LLM`` runs ``worker``, sets torch's threads to 1 while it starts (as vLLM
    0.32's GPU worker does) and records its settings and the thread count it generates at."""
    seen: dict = {"threads": []}

    class LLM:
        def __init__(self, **kwargs):
            seen["kwargs"] = kwargs
            torch.set_num_threads(1)

        def collective_rpc(self, method, kwargs=None):
            return [method(worker) if callable(method) else getattr(worker, method)(**(kwargs or {}))]

        def reset_prefix_cache(self):
            pass

        def generate(self, prompts, params, use_tqdm=False):
            seen["threads"].append(torch.get_num_threads())
            return [types.SimpleNamespace(outputs=[Completion(0, [5, 0])]) for _ in prompts]

    module = types.ModuleType("vllm")
    module.LLM = LLM
    module.SamplingParams = lambda **kw: types.SimpleNamespace(**kw)
    platforms = types.ModuleType("vllm.platforms")
    platforms.current_platform = types.SimpleNamespace(is_sleep_mode_available=lambda: False)
    monkeypatch.setitem(sys.modules, "vllm", module)
    monkeypatch.setitem(sys.modules, "vllm.platforms", platforms)
    return seen


@pytest.fixture
def two_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield 2
    torch.set_num_threads(before)


def policy():
    torch.manual_seed(0)
    model = tiny_qwen3()
    model.config.tie_word_embeddings = True  # the engine sends the LM head under its own name too
    return model


def test_vllm_engine_refuses_a_vllm_whose_reload_takes_no_weights(monkeypatch, two_threads):
    """vLLM before 0.32 has a ``reload_weights`` that takes no weights: found at start-up, in one line naming
    the supported range, not as a TypeError at the first weight push."""
    fake_vllm(monkeypatch, OldWorker())
    with pytest.raises(RuntimeError, match=re.escape(f"supports {SUPPORTED})")):
        make_engine(RolloutConfig(engine="vllm"), policy(), Tokenizer())


def test_vllm_engine_streams_the_weights_and_gives_training_its_threads(monkeypatch, two_threads):
    """The push is a stream, one whole tensor alive at a time (under fsdp2 each is gathered for it), and
    carries every weight, the tied LM head under its own name. vLLM's one serving thread is for generation
    only: the update gets its threads back."""
    from prerl.rollout import RunNeeds

    worker = Worker032()
    seen = fake_vllm(monkeypatch, worker)
    model = policy()
    needs = RunNeeds(sequence_tokens=96, compute_dtype="bfloat16")
    engine = make_engine(RolloutConfig(engine="vllm"), model, Tokenizer(), needs)
    assert (seen["kwargs"]["dtype"], seen["kwargs"]["max_model_len"]) == ("bfloat16", 96)
    assert torch.get_num_threads() == two_threads
    runner = worker.model_runner
    assert runner.kinds == ["generator"] and runner.most_alive == 0
    want = dict(model.named_parameters()) | {"lm_head.weight": model.get_output_embeddings().weight}
    assert runner.loaded.keys() == want.keys()
    assert all(torch.equal(runner.loaded[k], w) for k, w in want.items())
    out = engine.generate([[3, 4]], 1, 1.0, 1.0, 8)
    assert out.response_ids == [[5, 0]] and seen["threads"] == [1]
    assert torch.get_num_threads() == two_threads
