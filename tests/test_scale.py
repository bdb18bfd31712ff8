"""Model-scale switches (bf16 autocast over fp32 weights, gradient checkpointing, vLLM settings) on tiny models."""

import importlib.util

import pytest
import torch
import torch.nn.functional as F
from transformers import Qwen3ForCausalLM

from helpers import coin_grader, compose_config, reward_training_with, tiny_qwen3, to_run
from prerl.train import trainer
from prerl.config.schema import AlgorithmConfig, CriticConfig, ModelConfig, OptimConfig, RolloutConfig
from prerl.train.critic import Critic
from prerl.models.loading import autocast
from prerl.algo.objectives import main_phase
from prerl.rollout import make_engine
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


def test_each_optimizer_step_forwards_the_weights_it_follows(tmp_path, cache_dir, monkeypatch):
    """PPO takes four optimizer steps per rollout, policy and critic. Under bf16 autocast every forward of
    the update must compute with the weights as they are then: autocast caches its bf16 copy of each weight
    until the outermost autocast block exits, so one block around several steps gives the later steps the
    first's weights. Each forward of one linear layer of the policy and of the critic is recomputed from
    its input and the weight it saw, in a fresh block: bit for bit the same kernel on the same values."""
    reward_training_with(monkeypatch, coin_grader)  # mixed groups: the steps have gradients
    # a learning rate whose steps move weights past bf16's resolution (2^-8 relative), so stale ones show
    overrides = [
        "algorithm=ppo",
        "warmup_steps=0",
        "model.autocast=bfloat16",
        "optim.lr=1e-2",
        "algorithm.critic.lr=1e-2",
    ]
    cfg, resolved = to_run(compose_config(overrides, tmp_path, cache_dir))
    exp = trainer.Experiment(cfg, resolved)
    seen: dict[str, list] = {"policy": [], "critic": []}

    def record(name):
        def hook(module, inputs, output):
            if torch.is_grad_enabled():  # the update's forwards (scoring runs without gradient)
                seen[name].append((inputs[0].detach().clone(), output.detach().clone(), module.weight.detach().clone()))

        return hook

    assert exp.critic is not None
    exp.model.model.layers[0].mlp.down_proj.register_forward_hook(record("policy"))
    exp.critic.model.trunk.layers[0].mlp.down_proj.register_forward_hook(record("critic"))
    try:
        exp.step(0)
    finally:
        exp.tracker.finish()
    for name, calls in seen.items():
        weights = {tuple(w.bfloat16().view(torch.int16).flatten().tolist()) for _, _, w in calls}
        assert len(weights) == cfg.algorithm.mini_batches_per_step, name  # each step moved the bf16 weights
        for x, y, w in calls:
            with torch.autocast("cpu", dtype=torch.bfloat16):
                assert torch.equal(y, F.linear(x, w)), name


def test_paper_preset_turns_the_scale_switches_on(tmp_path, cache_dir):
    cfg, _ = to_run(compose_config(["experiment=paper_qwen3_4b"], tmp_path, cache_dir))
    assert (cfg.model.dtype, cfg.model.autocast, cfg.model.gradient_checkpointing) == ("float32", "bfloat16", True)
    assert cfg.optim.micro_batch_tokens == 10240  # token-budget micro-batches (ppo_max_token_len_per_gpu)
    v = cfg.rollout.vllm
    assert cfg.rollout.engine == "vllm"
    assert (v.tensor_parallel_size, v.gpu_memory_utilization, v.dtype) == (2, 0.6, "bfloat16")
    assert v.seed == cfg.seed and v.max_model_len == 9216


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
