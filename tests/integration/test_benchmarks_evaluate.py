"""evaluate.py end to end on the micro model: oracle engines on the fixtures, metrics in MLflow."""

import json
from pathlib import Path

import pytest
from helpers import compose_config, to_run
from mlflow.tracking import MlflowClient

from prerl.eval.policy_evaluation import run

FIXTURES = Path(__file__).parents[1] / "fixtures" / "benchmarks"
SETS = {
    "math500": "math500.jsonl",
    "minerva": "minerva.jsonl",
    "gpqa_diamond": "gpqa_diamond.jsonl.zip",
    "bbh": "bbh.jsonl",
    "humaneval": "humaneval.jsonl",
}


def overrides(engine):
    added = ("math500", "minerva")  # eval=ood plus two math sets; MMLU-Pro left out
    return ["eval=ood", f"rollout={engine}", "eval.samples_per_prompt=2", "~eval.sets.mmlu_pro"] + [
        f"{'+' if name in added else ''}eval.sets.{name}.path={FIXTURES / file}" for name, file in SETS.items()
    ]


@pytest.mark.parametrize("engine, expected", [("oracle", 1.0), ("shuffled_oracle", None)])
def test_evaluate_with_oracles_on_the_fixtures(engine, expected, tmp_path, cache_dir):
    cfg, resolved = to_run(compose_config(overrides(engine), tmp_path, cache_dir))
    metrics = run(cfg, resolved)
    for name in SETS:
        assert metrics[f"eval/{name}/problems"] >= 3
        if expected is not None:
            assert metrics[f"eval/{name}/avg_at_2"] == expected, name
    if engine == "shuffled_oracle":  # another problem's solution: the math and code sets score nothing
        assert all(metrics[f"eval/{name}/avg_at_2"] == 0 for name in ("math500", "minerva", "humaneval"))
    mean = sum(metrics[f"eval/{name}/avg_at_2"] for name in SETS) / len(SETS)
    assert metrics["eval/average/avg_at_2"] == pytest.approx(mean)

    client = MlflowClient(cfg.tracking.uri)
    run_info = client.search_runs([client.get_experiment_by_name("prerl-smoke").experiment_id])[0]
    assert run_info.info.status == "FINISHED" and run_info.data.tags["job"] == "evaluate"
    assert run_info.data.metrics["eval/average/avg_at_2"] == pytest.approx(mean)
    assert "eval/humaneval/pass_at_2" in run_info.data.metrics
    for name in SETS:  # per-problem counts, by the benchmark's own ids, agree with the logged Avg@2
        path = client.download_artifacts(run_info.info.run_id, f"per_problem/{name}.json", str(tmp_path))
        table = json.loads(Path(path).read_text())
        assert len(table["id"]) == metrics[f"eval/{name}/problems"] and len(set(table["id"])) == len(table["id"])
        assert sum(table["correct"]) / (2 * len(table["id"])) == pytest.approx(metrics[f"eval/{name}/avg_at_2"])


def test_evaluate_samples_the_mini_model(tmp_path, cache_dir):
    cfg, resolved = to_run(compose_config(["eval.sets.test.limit=2", "~eval.sets.ood"], tmp_path, cache_dir))
    metrics = run(cfg, resolved)
    assert set(metrics) >= {
        "eval/test/avg_at_2",
        "eval/test/pass_at_2",
        "eval/average/avg_at_2",
        "eval/test/samples_per_s",
    }
    assert 0 <= metrics["eval/test/avg_at_2"] <= 1


def test_paper_preset_composes_without_downloads(tmp_path, cache_dir, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cfg, _ = to_run(compose_config(["experiment=paper_qwen3_4b"], tmp_path, cache_dir))
    assert cfg.model.path == "Qwen/Qwen3-4B" and cfg.model.chat_template_kwargs == {"enable_thinking": False}
    assert cfg.data.name == "math" and list(cfg.eval.sets) == [
        "math500",
        "amc23",
        "aime24",
        "aime25",
        "minerva",
        "olympiadbench",
    ]
    assert (cfg.prompts_per_step, cfg.rollout.samples_per_prompt, cfg.optim.lr) == (128, 8, 1e-6)
    cfg8, _ = to_run(compose_config(["model=qwen3_8b"], tmp_path, cache_dir))
    assert cfg8.model.path == "Qwen/Qwen3-8B" and cfg8.model.context_token == "<|im_start|>"
