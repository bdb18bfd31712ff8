"""The vLLM engine's settings follow the run they are composed with (prerl/rollout/vllm.py), without vLLM:
unset, its dtype and length come from the run; set values win."""

import torch
from helpers import compose_config, to_run

from prerl.config.schema import VLLMConfig


def test_vllm_defaults_follow_the_run(tmp_path):
    """Unset, the engine computes in model.autocast (not the float32 of the master weights) and holds the
    longest sequence the run asks for (not the model's 40,960 positions); set values win."""
    from prerl.rollout import RunNeeds
    from prerl.rollout.vllm import engine_kwargs

    qwen3 = ["model=qwen3_4b", "data=math", "eval=math6", "rollout=vllm", "rollout.max_new_tokens=4096"]
    cfg, _ = to_run(compose_config(qwen3 + ["eval.max_new_tokens=8192"], tmp_path, str(tmp_path)))
    needs = RunNeeds.of(cfg, torch.device("cpu"))
    assert (cfg.model.dtype, cfg.model.autocast, cfg.rollout.vllm.dtype, cfg.rollout.vllm.max_model_len) == (
        "float32",
        "bfloat16",
        None,
        None,
    )
    kwargs = engine_kwargs(cfg.rollout.vllm, cfg.model.dtype, needs, rank=0)
    assert kwargs["dtype"] == "bfloat16"
    assert kwargs["max_model_len"] == 1024 + 8192  # data.max_prompt_tokens + the longer max_new_tokens, eval's
    chosen = engine_kwargs(VLLMConfig(dtype="float16", max_model_len=4096), "float32", needs, rank=0)
    assert (chosen["dtype"], chosen["max_model_len"]) == ("float16", 4096)
    no_autocast = RunNeeds(sequence_tokens=160, compute_dtype=None)
    assert engine_kwargs(VLLMConfig(), "float32", no_autocast, 0)["dtype"] == "float32"  # the weights' dtype then
