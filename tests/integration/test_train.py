"""End-to-end: every objective runs real steps on the micro model and is logged to MLflow."""

import json

import numpy as np
import pytest
import torch
from helpers import coin_grader, compose_config, reward_training_with, to_run
from mlflow.tracking import MlflowClient

import prerl.train.trainer as trainer
from prerl.config.schema import MiniModelConfig
from prerl.models.mini_model import read_build_info, shipped_build

OBJECTIVES = ["nsr_prerl", "psr_prerl", "prerl", "nsr_rl", "psr_rl", "rl", "w_reinforce"]


def params_of(path):
    from transformers import AutoModelForCausalLM

    return torch.cat([p.flatten() for p in AutoModelForCausalLM.from_pretrained(path).parameters()])


@pytest.mark.parametrize("objective", OBJECTIVES)
def test_objective_trains_and_logs(objective, tmp_path, cache_dir, monkeypatch):
    reward_training_with(monkeypatch, coin_grader)
    cfg, resolved = to_run(
        compose_config([f"objective={objective}", "warmup_steps=2", "total_steps=3"], tmp_path, cache_dir)
    )
    final = trainer.train(cfg, resolved)
    assert set(final) >= {"eval/test/avg_at_2", "eval/test/pass_at_2", "eval/ood/avg_at_2"}

    client = MlflowClient(cfg.tracking.uri)
    run = client.search_runs([client.get_experiment_by_name("prerl-smoke").experiment_id])[0]
    assert run.info.status == "FINISHED"
    assert run.data.params["objective.name"] == objective and run.data.tags["warmup_steps"] == "2"
    warm = [m.value for m in client.get_metric_history(run.info.run_id, "train/warmup")]
    assert warm == [1.0, 1.0, 0.0]  # two warm-up updates, then the main phase
    kept = [m.value for m in client.get_metric_history(run.info.run_id, "train/kept_samples")]
    assert 0 < kept[0] <= 1 and kept[2] == 1.0  # the main phase trains on every sample
    evals = client.get_metric_history(run.info.run_id, "eval/test/avg_at_2")
    assert [m.step for m in evals] == [0, 3]

    def history(key):
        return [m.value for m in client.get_metric_history(run.info.run_id, key)]

    # cost: every sampled token (4 prompts x 4 samples a step, no filter), running totals of the steps
    generated, lengths = history("cost/generated_tokens"), history("train/response_length")
    assert generated == pytest.approx([16 * n for n in lengths])
    for name in ("generated_tokens", "trained_tokens", "update_tokens", "train_seconds"):
        per_step = history(f"cost/{name}")
        assert history(f"cost/{name}_total") == pytest.approx(list(np.cumsum(per_step)))
    trained, update = history("cost/trained_tokens"), history("cost/update_tokens")
    assert all(0 <= t <= g and t <= u for t, g, u in zip(trained, generated, update))  # u adds the prompts
    assert history("cost/peak_rss_mb")[-1] > 0 and len(history("time/eval_s")) == 2

    path = client.download_artifacts(run.info.run_id, "per_problem/test_step00003.json", str(tmp_path))
    table = json.loads(open(path).read())  # per problem: id, correct count out of K, mean length
    assert table["K"] == 2 and len(table["id"]) == len(table["correct"]) == len(set(table["id"])) > 0
    assert all(0 <= c <= 2 for c in table["correct"]) and all(n > 0 for n in table["mean_length"])
    assert sum(table["correct"]) / (2 * len(table["correct"])) == pytest.approx(evals[-1].value)
    tags = run.data.tags  # the reproducibility fingerprint: the shipped weights, machine, packages
    assert tags["repro.base_weights"] == read_build_info(shipped_build(MiniModelConfig.micro()))["weights_sha256"]
    assert tags["repro.version.torch"] == torch.__version__ and tags["repro.torch_threads"] == str(
        torch.get_num_threads()
    )
    assert tags["repro.cpu"] and tags["repro.deterministic_algorithms"] in ("True", "False")

    from prerl.models.loading import model_path

    before, after = params_of(model_path(cfg.model, cache_dir)), params_of(tmp_path / "out" / "final_policy")
    assert not torch.equal(before, after)


def test_bad_config_is_rejected_before_any_work(tmp_path, cache_dir):
    with pytest.raises(Exception, match="warmup_steps=9 must be between 0 and total_steps=3"):
        to_run(compose_config(["warmup_steps=9", "total_steps=3"], tmp_path, cache_dir))


def test_bad_names_are_rejected_before_any_model_loads(tmp_path, cache_dir, monkeypatch):
    def no_loading(*args, **kwargs):
        raise AssertionError("a model was loaded before the config's names were checked")

    monkeypatch.setattr(trainer, "load_policy", no_loading)
    parts = ["algorithm.loss_agg_mode=sum", "objective.samples=weighted", "objective.positive_weight=-1"]
    infrastructure = ["rollout.engine=vlm", "data.name=gsm8k", "+eval.sets.aime={}"]

    def error(overrides: list[str]) -> str:
        cfg, resolved = to_run(compose_config(overrides, tmp_path, cache_dir))
        with pytest.raises(ValueError) as err:
            trainer.train(cfg, resolved)
        return str(err.value)

    message = error(infrastructure + parts)  # the infrastructure's names first, all at once (no torch needed)
    assert "rollout.engine='vlm': choose one of ['hf', 'oracle', 'shuffled_oracle', 'vllm']" in message
    assert "data.name='gsm8k': choose one of ['math', 'mini', 'word_problems']" in message
    assert "eval.sets.aime: not a benchmark" in message and not (tmp_path / "mlflow.db").exists()
    message = error(parts)  # then the algorithm's and objective's parts, all at once
    assert "algorithm.loss_agg_mode='sum': choose one of ['seq-mean-token-mean'," in message
    assert "objective.positive_weight=-1.0: must be >= 0" in message  # the knob of the chosen weighting
    with pytest.raises(ValueError, match=r"distributed.strategy='fsdp': choose one of \['replicate', 'fsdp2'\]"):
        to_run(compose_config(["distributed.strategy=fsdp"], tmp_path, cache_dir))  # a closed set: the schema's


def test_declared_split_names_are_what_the_mini_loader_returns(cache_dir):
    from prerl.config.schema import DataConfig
    from prerl.data.splits import SPLIT_NAMES, load_splits

    assert tuple(load_splits(DataConfig(train_problems=8, test_problems=2, ood_problems=2))) == SPLIT_NAMES["mini"]


def test_context_token_must_be_one_known_token(cache_dir):
    from prerl.config.schema import MiniModelConfig, ModelConfig
    from prerl.models.loading import context_token_id, load_policy

    _, tokenizer = load_policy(ModelConfig(mini=MiniModelConfig.micro()), cache_dir, torch.device("cpu"))
    assert context_token_id(tokenizer, "<|im_start|>") == tokenizer.convert_tokens_to_ids("<|im_start|>")
    with pytest.raises(ValueError, match="not a single token"):
        context_token_id(tokenizer, "no such token")
