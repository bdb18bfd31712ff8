"""The sampler–trainer mismatch of vLLM (``make test-vllm``; skipped without vLLM), reported per model.

vLLM samples a rollout and returns each token's log-prob under the distribution it drew from
(``logprobs_mode="processed_logprobs"``: after temperature); the trainer scores the same tokens with the
policy in fp32 (prerl.train.logprobs.score_logprobs). The test prints the mismatch metrics
(prerl/algo/rollout_correction.py) of an fp32 and of a bf16 engine, and checks that the fp32 engine's
log-probs are the trainer's up to rounding: its log-ratios shrink with the unit roundoff. Add a model by
its conf/model name to ``MODELS``.
"""

import gc
import os
import random

import pytest
import torch

pytest.importorskip("vllm")  # the optional extra; absent from the main venv

from prerl.algo import rollout_correction as rc
from prerl.config.schema import RolloutConfig, RolloutCorrectionConfig, VLLMConfig
from prerl.data import mini_task as task
from prerl.launch.cli import compose_checked
from prerl.models.loading import load_policy
from prerl.rollout import make_engine
from prerl.train.logprobs import pack, score_logprobs

CACHE = os.environ.get("PRERL_CACHE", ".cache/prerl")
MODELS = ["mini", "smollm2_135m"]  # conf/model names
PROMPTS, SAMPLES, MAX_NEW = 8, 4, 32
TEMPERATURE = 0.7  # not 1: log-probs of the unscaled logits (vLLM's default raw_logprobs) would show
# bf16 rounds at 2⁻⁸ of a value and fp32 at 2⁻²⁴: the fp32 engine's log-ratios are ~2⁻¹⁶ of the bf16
# one's when both come from rounding alone. Required: 2⁻⁸, room for how the roundings combine. A token
# scored at another temperature or position is off by as much in both engines.
ROUNDOFF_RATIO = 2.0**-8


def chat_prompts(tokenizer) -> list[list[int]]:
    rng = random.Random(0)
    problems = [task.sample_problem(rng, task.Difficulty(2, 2, 1, 2)) for _ in range(PROMPTS)]
    return [
        tokenizer(
            tokenizer.apply_chat_template(task.messages(p), add_generation_prompt=True, tokenize=False),
            add_special_tokens=False,
        )["input_ids"]
        for p in problems
    ]


def mismatch(model, tokenizer, prompts, dtype: str) -> tuple[float, dict[str, float]]:
    """The largest |log π_old − log π_sampler| of a vLLM rollout in ``dtype``, and the step's metrics."""
    engine = make_engine(RolloutConfig(engine="vllm", vllm=VLLMConfig(dtype=dtype)), model, tokenizer)
    try:
        out = engine.generate(prompts, SAMPLES, TEMPERATURE, 1.0, MAX_NEW)
    finally:
        del engine
        gc.collect()
    seqs = pack([prompts[g] for g in out.group], out.response_ids, tokenizer.pad_token_id)
    assert out.sample_logprobs is not None and [len(r) for r in out.sample_logprobs] == [
        len(r) for r in out.response_ids
    ]
    sampler = rc.padded(out.sample_logprobs, tuple(seqs.response_mask.shape))
    trainer = score_logprobs(model, seqs, 4096, TEMPERATURE)
    _, metrics = rc.correct(trainer, sampler, seqs.response_mask, RolloutCorrectionConfig(name="tis"))
    return float(((trainer - sampler) * seqs.response_mask).abs().max()), metrics


@pytest.mark.parametrize("name", MODELS)
def test_vllm_log_probs_against_the_trainer(name, capsys):
    model_cfg = compose_checked([f"model={name}"]).model
    model, tokenizer = load_policy(model_cfg, CACHE, torch.device("cpu"))  # fp32 weights: the trainer
    prompts = chat_prompts(tokenizer)
    found = {dtype: mismatch(model, tokenizer, prompts, dtype) for dtype in ("float32", "bfloat16")}
    with capsys.disabled():
        for dtype, (largest, metrics) in found.items():
            shown = ", ".join(f"{k.removeprefix(rc.METRIC_PREFIX)} {v:.6g}" for k, v in metrics.items())
            print(
                f"\nvLLM ({dtype}) vs trainer (fp32), model={name}, T={TEMPERATURE}: max|log r| {largest:.3g}, {shown}"
            )
    fp32, bf16 = found["float32"][0], found["bfloat16"][0]
    assert found["bfloat16"][1][rc.METRIC_PREFIX + "kl_k3"] > 0  # bf16 weights: another distribution
    assert fp32 <= ROUNDOFF_RATIO * bf16, (fp32, bf16)
