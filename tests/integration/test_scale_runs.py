"""Model-scale switches in runs: under bf16 autocast each of PPO's optimizer steps on the micro model forwards
the weights it follows, and the paper preset turns the switches on."""

import torch
import torch.nn.functional as F
from helpers import coin_grader, compose_config, reward_training_with, to_run

from prerl.train import trainer


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
