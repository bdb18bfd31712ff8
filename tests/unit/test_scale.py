"""Model-scale switches (bf16 autocast over fp32 weights, gradient checkpointing, vLLM settings) on tiny
models built in the test (in runs: tests/integration/test_scale_runs.py)."""

import importlib.util

import pytest
import torch
from helpers import tiny_qwen3
from transformers import Qwen3ForCausalLM

from prerl.algo.objectives import main_phase
from prerl.config.schema import AlgorithmConfig, CriticConfig, ModelConfig, OptimConfig, RolloutConfig
from prerl.models.loading import autocast
from prerl.rollout import make_engine
from prerl.train.critic import Critic
from prerl.train.logprobs import pack
from prerl.train.update import UpdateBatch, policy_update


def tiny_update(checkpointing: bool, compute: str | None) -> tuple[Qwen3ForCausalLM, dict]:
    torch.manual_seed(0)
    model = tiny_qwen3()
    if checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.train()
    seqs = pack([[1, 2, 3], [4, 5]], [[6, 7, 8, 9], [10, 11]], pad_id=0)
    adv = torch.tensor([[1.0], [-1.0]]).expand_as(seqs.response_mask).clone()
    algo = AlgorithmConfig()
    with autocast(ModelConfig(autocast=compute), torch.device("cpu")):
        stats = policy_update(
            model,
            torch.optim.SGD(model.parameters(), lr=0.1),
            UpdateBatch(seqs, adv, seqs.response_mask),
            main_phase(algo),
            algo,
            OptimConfig(grad_clip=1e9),
            max_new_tokens=8,
        )
    return model, stats


def test_checkpointing_and_bf16_autocast_train_fp32_weights():
    _, plain = tiny_update(False, None)
    model, stats = tiny_update(True, "bfloat16")
    assert all(p.dtype == torch.float32 for p in model.parameters())  # master weights stay fp32
    assert stats["skipped_update"] == 0 and stats["grad_norm"] > 0
    assert stats["grad_norm"] == pytest.approx(plain["grad_norm"], rel=0.05)  # bf16 compute, same gradient
    _, checkpointed = tiny_update(True, None)
    # recomputation runs the same kernels in the same order in this process: equal up to the last bits
    assert checkpointed["grad_norm"] == pytest.approx(plain["grad_norm"], rel=1e-5)


def test_updates_free_their_gradients():
    """After an optimizer step no parameter of the policy or the critic holds a gradient: they would sit in
    memory through the next rollout, where vLLM wakes up to allocations sized without them."""
    model, _ = tiny_update(False, None)
    assert [n for n, p in model.named_parameters() if p.grad is not None] == []
    critic = Critic(model, CriticConfig(), OptimConfig())
    seqs = pack([[1, 2, 3], [4, 5]], [[6, 7, 8, 9], [10, 11]], pad_id=0)
    stats = critic.update(seqs, torch.ones_like(seqs.response_mask), torch.zeros_like(seqs.response_mask))
    assert stats["critic/value_loss"] > 0  # a real step, with gradients to free
    assert [n for n, p in critic.model.named_parameters() if p.grad is not None] == []


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vLLM is installed here")
def test_vllm_engine_without_vllm_says_how_to_install():
    with pytest.raises(ImportError, match=r"prerl\[vllm\]"):
        make_engine(RolloutConfig(engine="vllm"), model=None, tokenizer=None)


def test_auto_autocast_is_bf16_only_where_the_device_multiplies_bf16_in_hardware(monkeypatch):
    from prerl.config.schema import ModelConfig
    from prerl.models.loading import autocast, compute_dtype

    cpu, auto = torch.device("cpu"), ModelConfig(autocast="auto")
    for amx, avx512_bf16, expected in [(True, False, "bfloat16"), (False, True, "bfloat16"), (False, False, None)]:
        monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda amx=amx: amx)
        monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda bf16=avx512_bf16: bf16)
        assert compute_dtype(auto, cpu) == expected
        with autocast(auto, cpu):
            assert torch.is_autocast_enabled("cpu") == (expected is not None)
    assert compute_dtype(ModelConfig(autocast="float16"), cpu) == "float16"  # an explicit choice stays
    assert compute_dtype(ModelConfig(), cpu) is None
