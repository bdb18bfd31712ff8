"""The memory plan (prerl/plan) against the architecture and what torch allocates, and the verdicts it gives.

The plan's parts are checked where a CPU can show them, on tiny models built in the test:
- parameter counts of the meta-device model against the architecture's formula, by hand;
- what autograd keeps after a forward, counted with ``saved_tensors_hooks``, against the per-layer
  formula of prerl/plan/activations.py;
- weight, gradient and AdamW bytes against the tensors of a real step (two ranks: tests/process/distributed);
- the verdicts and remedies: what cannot fit is refused naming the phase and the settings that change it.
The peak of a real update under torch's profiler: tests/integration/test_plan_measured.py; the refusal
of ``python train.py``: tests/process/test_plan_train_py.py.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from helpers import (
    SMALL_SMOLLM2,
    SMOLLM2,
    TINY_QWEN3,
    autocast,
    hf_calls,
    main_phase_config,
    optim_config,
    padded_rows,
    tiny_model,
)
from torch import nn
from transformers import AutoConfig, AutoModelForCausalLM

from prerl import plan as memory_plan
from prerl.algo.objectives import main_phase
from prerl.config.schema import ConfigError, ModelConfig, parse_bytes
from prerl.launch.cli import compose_checked
from prerl.plan.activations import MicroBatch, Precision, saved_bytes
from prerl.plan.cli import main as plan_cli
from prerl.plan.memory import Target
from prerl.plan.shapes import shape_from_dict, shape_of
from prerl.train.logprobs import response_logprobs
from prerl.train.update import UpdateBatch, policy_update

TINY_LLAMA = {**TINY_QWEN3, "model_type": "llama"}


def decoder_params(h: int, i: int, layers: int, heads: int, kv: int, d: int, vocab: int, qk_norm: bool, tied: bool):
    """By hand: q, k, v, o projections, the gated MLP's three matrices, two norms (and Qwen3's query and
    key norms) per layer; the embedding, the final norm and an untied head."""
    layer = h * heads * d + 2 * h * kv * d + heads * d * h + 3 * h * i + 2 * h + (2 * d if qk_norm else 0)
    return layers * layer + vocab * h + h + (0 if tied else vocab * h)


@pytest.mark.parametrize(
    "path, args",
    [
        ("Qwen/Qwen3-4B", (2560, 9728, 36, 32, 8, 128, 151936, True, True)),
        ("Qwen/Qwen3-8B", (4096, 12288, 36, 32, 8, 128, 151936, True, False)),
        ("Qwen/Qwen3-8B-Base", (4096, 12288, 36, 32, 8, 128, 151936, True, False)),
    ],
)
def test_shipped_qwen3_configs_give_the_architecture_without_the_hub(path, args):
    from prerl.plan.shapes import model_config

    config, source = model_config(ModelConfig(path=path), "unused")
    assert source.endswith(f"prerl/model_configs/{path}/config.json")
    shape = shape_of(config, path)
    assert shape.params == decoder_params(*args)
    h, i, layers, heads, kv, d, vocab, _, tied = args
    assert shape.head_params == (0 if tied else vocab * h)
    assert shape.layers * shape.layer_params + shape.root_params == shape.params


def test_shipped_configs_give_the_models_positions():
    assert ModelConfig(path="Qwen/Qwen3-4B").max_positions() == 40960
    assert ModelConfig(path="Qwen/Qwen3-8B").max_positions() == 40960
    assert ModelConfig(path="Qwen/Qwen3-8B-Base").max_positions() == 32768
    assert ModelConfig(path="someone/unknown-model").max_positions() is None
    with pytest.raises(ConfigError, match="eval.max_new_tokens=40000.*positions, 32768"):
        compose_checked(["model=qwen3_8b_base", "eval.max_new_tokens=40000"])


def test_a_smollm2_shaped_config_from_a_dict():
    shape = shape_from_dict(SMOLLM2, "SmolLM2-135M")
    assert shape.params == decoder_params(576, 1536, 30, 9, 3, 64, 49152, False, True)  # 134,515,008
    assert (shape.head_dim, shape.qk_norm, shape.tied, shape.derived) == (64, False, True, True)


def test_sizes_parse_in_both_units():
    assert parse_bytes("80GiB") == 80 * 2**30
    assert parse_bytes("141GB") == 141 * 10**9
    assert parse_bytes("8.5e10") == 85 * 10**9
    with pytest.raises(ConfigError, match="plan.device_memory='80 gigs'"):
        parse_bytes("80 gigs")
    with pytest.raises(ConfigError, match="plan.margin=-0.1"):
        compose_checked(["plan.margin=-0.1"])


@pytest.fixture(autouse=True)
def grouped_kv_on_cpu(monkeypatch):
    monkeypatch.setenv("TRANSFORMERS_SDPA_FORCE_GQA", "1")  # what prerl/models/loading.py sets for CPU runs


def saved_by_autograd(model, seqs, cast: bool, checkpointing: bool) -> int:
    """Bytes of the distinct storages autograd keeps for the backward of a scoring forward, parameters aside."""
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    seen: dict[int, int] = {}

    def pack_hook(t):
        storage = t.untyped_storage()
        if storage.data_ptr() not in params:
            seen[storage.data_ptr()] = storage.nbytes()
        return t

    with autocast(cast), torch.autograd.graph.saved_tensors_hooks(pack_hook, lambda t: t):
        response_logprobs(model, seqs, "detached")
    return sum(seen.values())


@pytest.mark.parametrize("config", [TINY_QWEN3, TINY_LLAMA, SMALL_SMOLLM2], ids=["qwen3", "llama", "smollm2"])
@pytest.mark.parametrize("cast, dtype", [(False, torch.float32), (True, torch.float32), (False, torch.bfloat16)])
@pytest.mark.parametrize("checkpointing", [False, True])
def test_saved_activations_follow_the_per_layer_formula(config, cast, dtype, checkpointing):
    """Every tensor autograd keeps is in the formula but the index of the scored columns (8 bytes a
    column); under checkpointing the plan also counts the rotary tables, which the checkpoint keeps by
    reference rather than through autograd's hooks."""
    rows, width = 3, 13
    model = tiny_model(config, dtype, checkpointing)
    seqs = padded_rows(rows, width, config["vocab_size"])
    shape = shape_of(model.config, "tiny")
    w = 4 if dtype == torch.float32 else 2
    precision = Precision(w, 2 if cast else w, cast)
    mb = MicroBatch(rows * width, width, on_gpu=False, scored=rows * (width - 1))
    # autograd keeps the bf16 copy of each weight a linear used (checkpointed layers: none, recomputed)
    layer_linear = sum(
        p.numel() for m in model.model.layers[0].modules() if isinstance(m, nn.Linear) for p in m.parameters()
    )
    cast_weights = 2 * (shape.linear_params - shape.layers * layer_linear * checkpointing) if cast else 0
    planned = saved_bytes(shape, precision, mb, checkpointing) + cast_weights
    measured = saved_by_autograd(model, seqs, cast, checkpointing)
    tables = 2 * width * shape.head_dim * w if checkpointing else 0
    assert -8 * width <= planned - measured - tables <= 0, (planned, measured)


def storage_bytes(tensors) -> int:
    return sum({t.untyped_storage().data_ptr(): t.untyped_storage().nbytes() for t in tensors}.values())


@pytest.mark.parametrize("model", ["micro", "mini"])
def test_weights_gradients_and_moments_equal_a_real_steps(model):
    cfg = compose_checked(["experiment=smoke", f"model={model}"])
    plan = memory_plan.plan_for(cfg, Target("cpu", None, 1))
    shape = plan.setup.shape
    policy = AutoModelForCausalLM.from_config(AutoConfig.for_model(**shape_config(plan)))
    seqs = padded_rows(4, 12, shape.vocab)
    optimizer = torch.optim.AdamW(policy.parameters(), lr=1e-3)
    batch = UpdateBatch(seqs, torch.ones_like(seqs.response_mask), seqs.response_mask.clone())
    algo = main_phase_config()
    held, step = {}, optimizer.step

    def step_recording_the_gradients(*args, **kwargs):  # the update frees them right after the step
        held["gradients"] = storage_bytes(p.grad for p in policy.parameters())
        return step(*args, **kwargs)

    optimizer.step = step_recording_the_gradients
    policy_update(policy, optimizer, batch, main_phase(algo), algo, optim_config(1024), 64)
    update = {i.category: i.bytes for i in next(p for p in plan.phases if p.name == "update").items}
    assert update["weights"] == storage_bytes(policy.parameters())
    assert update["gradients"] == held["gradients"]
    moments = [s[k] for s in optimizer.state.values() for k in ("exp_avg", "exp_avg_sq")]
    assert update["optimizer"] == storage_bytes(moments)


def shape_config(plan) -> dict:
    import json

    return json.loads(Path(plan.source).read_text())


def test_a_config_that_cannot_fit_is_refused_naming_the_phase():
    cfg = compose_checked(["experiment=paper_qwen3_4b", "plan.device_memory=80GiB"])
    with pytest.raises(ConfigError) as err:
        memory_plan.check(cfg)
    message = str(err.value)
    assert "\n" not in message
    assert "rollout (vLLM) phase needs" in message and "rollout.vllm.gpu_memory_utilization <=" in message
    assert "plan.check=false" in message


def test_plan_check_false_starts_anyway():
    assert (
        memory_plan.check(
            compose_checked(["experiment=paper_qwen3_4b", "plan.device_memory=80GiB", "plan.check=false"])
        )
        is None
    )


def test_a_peak_within_the_margin_is_allowed():
    cfg = compose_checked(["experiment=paper_qwen3_4b", "plan.device_memory=80GiB"])
    plan = memory_plan.plan_for(cfg, memory_plan.target_for(cfg))
    over = plan.over()
    assert over is not None and over > 0
    margin = over / plan.device_bytes * 1.01  # type: ignore[operator]
    assert memory_plan.refusal(plan, margin) is None and memory_plan.refusal(plan, margin / 1.02) is not None


def test_a_vllm_share_without_room_for_one_sequence_is_refused():
    cfg = compose_checked(
        ["experiment=paper_qwen3_4b", "plan.device_memory=141GiB", "rollout.vllm.gpu_memory_utilization=0.03"]
    )
    with pytest.raises(ConfigError, match="cannot hold one sequence of max_model_len=9216"):
        memory_plan.check(cfg)


QWEN3_MATH = ["model=qwen3_4b", "data=math", "eval=math6"]

# Qwen3-4B's KV cache per position (prerl/plan/memory.py kv_cache_bytes): 36 layers × 8 key/value heads ×
# 128 dims, keys in the fp32 of the weights (4 bytes) and values in the bf16 of autocast (2 bytes)
QWEN3_4B_KV_POSITION = 36 * 8 * 128 * (4 + 2)


def test_a_remedy_names_only_settings_that_change_the_plan():
    """The paper preset on one CPU rank (``train.py --plan experiment=paper_qwen3_4b`` on a small machine):
    its update peaks; it checkpoints already and FSDP2 on one rank shards nothing (the same peak), so the
    remedy names neither checkpointing nor FSDP2 without more ranks; with checkpointing off it names it."""
    target = Target("cpu", 20 * 2**30, 1)
    on = memory_plan.plan_for(compose_checked(["experiment=paper_qwen3_4b"]), target)
    assert on.peak.name == "update" and on.setup.cfg.model.gradient_checkpointing
    reason = memory_plan.refusal(on, 0.05)
    assert reason is not None and "gradient_checkpointing" not in reason
    assert "a smaller optim.micro_batch_tokens" in reason and "distributed.strategy=fsdp2 over more ranks" in reason
    sharded = compose_checked(["experiment=paper_qwen3_4b", "distributed.strategy=fsdp2"])
    assert memory_plan.plan_for(sharded, target).peak.total == on.peak.total
    assert "more ranks (FSDP2 shards" in memory_plan.remedy(memory_plan.plan_for(sharded, target))
    off = memory_plan.plan_for(
        compose_checked(["experiment=paper_qwen3_4b", "model.gradient_checkpointing=false"]), target
    )
    assert off.peak.total > on.peak.total and "model.gradient_checkpointing=true" in memory_plan.remedy(off)


def test_fewer_prompts_per_generate_call_are_named_only_where_a_call_holds_several():
    """``eval=math6`` with calls of 294,912 positions: one prompt's 32 samples of 1,024 + 8,192 positions
    fill a call, so a smaller rollout.batch_tokens or batch_samples cannot shrink it (it would be refused);
    with 1,024 new tokens a call holds several prompts, and fewer would shrink it."""
    target = Target("cuda", 80 * 2**30, 1)
    one = memory_plan.plan_for(compose_checked(QWEN3_MATH + ["rollout.batch_tokens=294912"]), target)
    assert one.peak.name == "evaluation" and "rollout.batch" not in memory_plan.remedy(one)
    assert "a smaller eval.max_new_tokens" in memory_plan.remedy(one)
    several = QWEN3_MATH + ["rollout.batch_tokens=294912", "eval.max_new_tokens=1024"]
    many = memory_plan.plan_for(compose_checked(several), Target("cuda", 40 * 2**30, 1))
    assert many.peak.name == "evaluation" and "a smaller rollout.batch_tokens" in memory_plan.remedy(many)


def kv_planned(overrides: list[str], phase: str) -> int:
    plan = memory_plan.plan_for(compose_checked(overrides), Target("cuda", None, 1))
    return next(p for p in plan.phases if p.name == phase).by_category()["KV cache"]


def test_the_transformers_engines_kv_cache_is_planned_per_call_within_batch_tokens():
    """``model=qwen3_4b data=math``, 2 prompts a step, 8 samples of 96 tokens, and calls of at most
    rollout.batch_tokens=16,384 positions: prompts at the reserved 1,024 tokens go one per call (2 × 8 ×
    1,120 = 17,920 positions would exceed it), but prompts of up to 928 tokens go two to a call (2 × 8 ×
    1,024 = 16,384), and the engine makes that call. It is planned, with the prefill's cache of one row
    per prompt held while it is copied per sample: 2 × (8 + 1) × 1,024 positions. With the bound past the
    step, both prompts at the reserved width: 2 × (8 + 1) × 1,120."""
    overrides = QWEN3_MATH + ["prompts_per_step=2"]
    cfg = compose_checked(overrides + ["rollout.batch_tokens=16384"])
    r = cfg.rollout
    assert (r.samples_per_prompt, r.max_new_tokens, cfg.data.max_prompt_tokens) == (8, 96, 1024)
    assert [len(call) for call in hf_calls([[1] * 928] * 2, 8, 96, r)] == [2]
    assert [len(call) for call in hf_calls([[1] * 929] * 2, 8, 96, r)] == [1, 1]
    assert kv_planned(overrides + ["rollout.batch_tokens=16384"], "rollout") == 2 * 9 * 1024 * QWEN3_4B_KV_POSITION
    assert kv_planned(overrides + ["rollout.batch_tokens=1048576"], "rollout") == 2 * 9 * 1120 * QWEN3_4B_KV_POSITION


def test_the_plan_refuses_what_the_transformers_engine_refuses_naming_the_same_setting():
    """``eval=math6``: one prompt's 32 samples of 1,024 + 8,192 positions exceed rollout.batch_tokens, so
    the engine refuses to evaluate; the plan refuses the run before any weight loads, on any device,
    naming the setting the engine names. Raised past those samples, the one prompt per call is planned."""
    cfg = compose_checked(QWEN3_MATH)
    ev = cfg.eval
    with pytest.raises(ConfigError) as engine:
        hf_calls([[1] * cfg.data.max_prompt_tokens], ev.samples_per_prompt, ev.max_new_tokens, cfg.rollout)
    for device in ("141GiB", "1000GiB"):
        with pytest.raises(ConfigError) as planned:
            memory_plan.check(compose_checked(QWEN3_MATH + [f"plan.device_memory={device}"]))
        named = [set(re.findall(r"rollout\.[a-z_]+", str(err.value))) for err in (engine, planned)]
        assert named[0] == named[1] == {"rollout.batch_tokens"}, str(planned.value)
        assert "evaluation phase" in str(planned.value)
    raised = kv_planned(QWEN3_MATH + ["rollout.batch_tokens=294912"], "evaluation")
    assert raised == (32 + 1) * (1024 + 8192) * QWEN3_4B_KV_POSITION


def test_a_cpu_run_is_planned_against_the_machines_memory(monkeypatch):
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    target = memory_plan.target_for(compose_checked(["experiment=smoke", "device=cpu"]), ranks=2)
    assert target == Target("cpu", memory_plan.machine_memory() // 2, 2)


def test_fsdp2_shards_what_replicate_repeats():
    """Qwen3-8B on eight 80 GiB GPUs: replicated, the optimizer step alone (fp32 weights, gradients and
    two moments: 16 bytes a parameter) is over; sharded, it fits."""
    base = ["model=qwen3_8b", "plan.device_memory=80GiB"]
    replicated = memory_plan.plan_for(cfg := compose_checked(base), memory_plan.target_for(cfg, ranks=8))
    sharded = memory_plan.plan_for(
        cfg := compose_checked(base + ["distributed.strategy=fsdp2"]), memory_plan.target_for(cfg, ranks=8)
    )
    step = next(p for p in replicated.phases if p.name == "optimizer step")
    assert step.total >= 16 * replicated.setup.shape.params
    assert memory_plan.refusal(replicated, 0.05) is not None and memory_plan.refusal(sharded, 0.05) is None


def test_the_plan_command_prints_every_phase_and_its_exit_status(capsys):
    args = ["experiment=paper_qwen3_4b", "--ranks", "8", "--device-memory", "80GiB"]
    assert plan_cli([*args, "distributed.strategy=fsdp2"]) == 0
    out = capsys.readouterr().out
    for fragment in ("| rollout (vLLM) |", "| update |", "| optimizer step |", "peak: rollout (vLLM)", "fits"):
        assert fragment in out
    assert plan_cli(args) == 1  # replicated: refused
    assert "does NOT fit" in capsys.readouterr().out


def test_a_mini_recipe_not_built_yet_is_planned_from_the_recipe(tmp_path):
    """No shipped or cached build: the recipe's widths, and its vocabulary as the most tokens its tokenizer can have."""
    cfg = compose_checked(["model.mini.hidden_size=96", f"cache_dir={tmp_path}"])
    plan = memory_plan.plan_for(cfg, Target("cpu", None, 1))
    assert "recipe" in plan.source
    assert (plan.setup.shape.hidden, plan.setup.shape.vocab) == (96, cfg.model.mini.vocab_size)


def test_the_reference_and_the_critic_are_planned_as_built():
    """PPO's critic (prerl/train/critic.py: the policy's trunk and a scalar head, with its AdamW) and a KL
    reference (the policy's weights), against the modules the trainer builds."""
    from prerl.config.schema import CriticConfig, OptimConfig
    from prerl.train.critic import Critic

    cfg = compose_checked(["experiment=smoke", "algorithm=ppo", "algorithm.kl.placement=loss"])
    plan = memory_plan.plan_for(cfg, Target("cpu", None, 1))
    held = {i.category: i.bytes for i in plan.phases[0].items}
    policy = AutoModelForCausalLM.from_config(AutoConfig.for_model(**shape_config(plan)))
    critic = Critic(policy, CriticConfig(), OptimConfig())
    assert held["reference"] == storage_bytes(policy.parameters())
    assert held["critic"] == 3 * storage_bytes(critic.model.parameters())  # weights and two AdamW moments
    assert "critic update" in [p.name for p in plan.phases] and "scoring" in [p.name for p in plan.phases]


def test_auto_autocast_is_planned_as_bf16_on_gpus_and_as_this_cpu_does():
    from prerl.models.loading import compute_dtype
    from prerl.plan.memory import planned_compute_dtype

    cfg = compose_checked(["experiment=smollm2_dsrl"])
    assert cfg.model.autocast == "auto"
    assert planned_compute_dtype(cfg, Target("cuda", 80 * 2**30, 1)) == "bfloat16"
    assert planned_compute_dtype(cfg, Target("cpu", None, 1)) == compute_dtype(cfg.model, torch.device("cpu"))
    plan = memory_plan.plan_for(cfg, Target("cuda", 80 * 2**30, 1))
    assert plan.setup.precision.compute == 2 and plan.setup.precision.casts
