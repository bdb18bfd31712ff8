"""Bad input is answered in one line naming the key, the value and what is allowed (prerl/launch/cli.py).

The inputs are composed in-process as ``train.py`` composes them (Hydra's compose API); the exit status
and stderr of ``python train.py`` itself: tests/process/test_config_errors_train_py.py.
"""

import json
from pathlib import Path

import pytest

from prerl.config.schema import ConfigError, looks_local
from prerl.launch.cli import compose_checked

ROOT = Path(__file__).resolve().parents[2]

# (overrides, fragments the one-line message must contain: the key, the value, what is allowed)
BAD = [
    (["warmup_steps=-1"], ["warmup_steps=-1", "between 0 and total_steps=60"]),
    (["warmup_steps=61"], ["warmup_steps=61", "total_steps=60"]),
    (["prompts_per_step=0"], ["prompts_per_step=0", ">= 1"]),
    (["rollout.temperature=0"], ["rollout.temperature=0", "> 0"]),
    (["rollout.top_p=1.5"], ["rollout.top_p=1.5", "(0, 1]"]),
    (["rollout.samples_per_prompt=0"], ["rollout.samples_per_prompt=0", ">= 1"]),
    (["eval.temperature=-1"], ["eval.temperature=-1", "> 0"]),
    (["optim.lr=0"], ["optim.lr=0", "> 0"]),
    (["checkpoint.keep_last=0"], ["checkpoint.keep_last=0", ">= 1"]),
    (["objective.loss_coef=0"], ["objective.loss_coef=0", "> 0"]),
    (["model.dtype=int8"], ["model.dtype='int8'", "float32, bfloat16, float16"]),
    (["resume=maybe"], ["resume='maybe'", "auto or never"]),
    (["device=tpu"], ["device='tpu'", "auto, cpu or cuda"]),
    (["rollout.vllm.gpu_memory_utilization=2"], ["rollout.vllm.gpu_memory_utilization=2", "(0, 1]"]),
    # the rollout correction: its name, and the chosen part's knobs only
    (["rollout.correction.name=tls"], ["rollout.correction.name='tls'", "'mis', 'none', 'tis'"]),
    (["rollout.correction.name=tis", "rollout.correction.cap=0.5"], ["rollout.correction.cap=0.5", ">= 1"]),
    (["rollout.correction.name=mis", "rollout.correction.lower=1.5"], ["rollout.correction.lower=1.5", "[0, 1]"]),
    (["rollout.correction.name=mis", "rollout.correction.upper=0.5"], ["rollout.correction.upper=0.5", ">= 1"]),
    (["rollout.correction.cap=0"], ["rollout.correction.cap=0", "> 0"]),
    # unknown keys, with a suggestion and the keys allowed there
    (["rollout.tempx=1"], ["rollout.tempx", "unknown key", "did you mean rollout.temperature", "top_p"]),
    (["foo=1"], ["foo", "unknown key", "warmup_steps"]),
    (["+foo=1"], ["foo", "unknown key", "warmup_steps"]),
    (["+rollout.vllm.sped=1"], ["rollout.vllm.sped", "unknown key", "did you mean rollout.vllm.seed"]),
    # wrong types
    (["warmup_steps=abc"], ["warmup_steps", "'abc'", "Integer"]),
    (["rollout.temperature=hot"], ["rollout.temperature", "'hot'", "Float"]),
    (["objective.space=middle"], ["objective.space", "'middle'", "post, pre"]),
    (["algorithm.kl.estimator=k9"], ["algorithm.kl.estimator", "'k9'", "'k1', 'k2', 'k3'"]),
    # group options, the optional experiment group included
    (["algorithm=nope"], ["algorithm=nope", "no such option", "grpo", "dapo"]),
    (["model=qwen9"], ["model=qwen9", "no such option", "qwen3_4b"]),
    (["experiment=nope"], ["experiment=nope", "no such option", "smoke"]),
    (["hydra/launcher=nope"], ["hydra/launcher=nope", "no such option", "joblib"]),
    # override syntax
    (["warmup_steps=[1"], ["warmup_steps=[1", "cannot parse"]),
    (["warmup_steps=1,2"], ["warmup_steps=1,2", "multirun"]),
    # local paths that do not exist; lengths past the model's positions
    (["model.path=/nonexistent"], ["model.path='/nonexistent'", "no such folder"]),
    (["model.path=./no/such/model"], ["model.path='./no/such/model'", "no such folder"]),
    (["model.path='~/no-such-model'"], ["model.path='~/no-such-model'", "no such folder"]),  # ~ needs quotes
    (["model.path=outputs/2026/no-run/final_policy"], ["no such folder"]),
    (["data=math", "data.path=/no/such/train.jsonl"], ["data.path='/no/such/train.jsonl'", "no such file"]),
    (["eval.data_dir=/no/such/data"], ["eval.data_dir='/no/such/data'", "no such folder"]),
    (["rollout.max_new_tokens=100000"], ["rollout.max_new_tokens=100000", "<= 448", "positions, 512"]),
    (["eval.max_new_tokens=500"], ["eval.max_new_tokens=500", "<= 448"]),
    (["model.mini.max_positions=64"], ["rollout.max_new_tokens=96", "<= 0", "positions, 64"]),
    # a Hub model whose config.json ships (prerl/model_configs): checked without the Hub
    (["model=qwen3_4b", "rollout.max_new_tokens=100000"], ["rollout.max_new_tokens=100000", "positions, 40960"]),
    (["rollout.vllm.max_model_len=100"], ["rollout.max_new_tokens=96", "<= 36", "rollout.vllm.max_model_len"]),
    (["model.mini=null"], ["model.path, model.gguf or model.mini"]),
    (["model=smollm2_135m", "model.gguf.sha256=abc"], ["model.gguf.sha256='abc'", "64 hex digits"]),
    (
        ["model=smollm2_135m", "model.gguf.package=no_such_package_here"],
        ["model.gguf.package=no_such_package_here", "not installed", "pip install"],
    ),
]


@pytest.mark.parametrize("overrides,fragments", BAD, ids=[" ".join(o) for o, _ in BAD])
def test_bad_input_is_one_line_naming_key_value_and_what_is_allowed(overrides, fragments):
    with pytest.raises(ConfigError) as info:
        compose_checked(overrides)
    message = str(info.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, message


@pytest.mark.parametrize(
    "overrides",
    [
        [],
        ["experiment=smoke"],
        ["experiment=paper_qwen3_4b"],
        ["model=mini_styles"],
        ["algorithm=ppo"],
        ["rollout=vllm"],  # its correction (tis) is checked without importing vLLM
        ["rollout.correction.name=mis", "rollout.correction.cap=0.5"],  # cap is TIS's knob: not checked for mis
        ["+eval.sets.math500.limit=3"],  # a new eval set is a dict entry, not an unknown key
        ["rollout.max_new_tokens=448"],  # exactly at the limit: 64 + 448 = 512 positions
        ["model.path=someone/unshipped", "rollout.max_new_tokens=100000"],  # a Hub model is not downloaded to check
        ["model.path=Qwen/Qwen3-4B"],  # ORG/NAME: a Hub id, not a missing folder
    ],
)
def test_good_input_composes(overrides):
    compose_checked(overrides)


def test_a_local_model_folder_is_checked_against_its_config_json(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"max_position_embeddings": 160}))
    cfg = compose_checked([f"model.path={tmp_path}", "rollout.max_new_tokens=96", "eval.max_new_tokens=96"])
    assert cfg.model.max_positions() == 160
    with pytest.raises(ConfigError, match=r"rollout.max_new_tokens=97: must be <= 96 \(the model's positions, 160"):
        compose_checked([f"model.path={tmp_path}", "rollout.max_new_tokens=97"])


@pytest.mark.parametrize(
    "path,local",
    [
        ("/abs", True),
        ("./x", True),
        ("../x", True),
        ("~/x", True),
        ("a/b/c", True),
        (".", True),
        ("Qwen/Qwen3-4B", False),
        ("gpt2", False),
    ],
)
def test_what_counts_as_a_local_path(path, local):
    assert looks_local(path) is local


def test_the_prompt_reservation_covers_every_mini_prompt():
    """data.max_prompt_tokens is the length check's stand-in for prompts not yet tokenised: it must
    hold every prompt of the mini task's splits under the shipped tokenizers."""
    from transformers import AutoTokenizer

    from prerl.data.splits import load_splits, render

    for model in ("mini", "micro"):
        cfg = compose_checked([f"model={model}", "data.train_problems=500"])
        shipped = next((ROOT / "prerl/models/shipped").glob(f"{cfg.model.mini.name}-*"))
        tokenizer = AutoTokenizer.from_pretrained(shipped)
        for split in load_splits(cfg.data).values():
            longest = max(len(ids) for ids in render(split, tokenizer)["prompt_ids"])
            assert longest <= cfg.data.max_prompt_tokens


def test_the_schemas_strategy_names_are_the_strategies_that_exist():
    from prerl.config.schema import STRATEGY_NAMES
    from prerl.parallel.distributed import STRATEGIES

    assert set(STRATEGY_NAMES) == set(STRATEGIES)
