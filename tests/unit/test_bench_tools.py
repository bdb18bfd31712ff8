"""The benchmark commands' own logic (benchmarks/): the model of Qwen3-0.6B's shape, the stage split,
the command lines. Benchmarks take timings; these tests take none."""

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import bench
import bench_growth
import bench_rollout
import bench_trl
from common import REAL_MODEL_SIZES, Sizes, check_model, default_sizes, model_overrides
from shaped_model import build_model

from prerl.config.schema import MODEL_CONFIGS


def test_the_qwen3_0_6b_shaped_model_has_the_parameters_its_config_implies():
    c = json.loads((MODEL_CONFIGS / "Qwen/Qwen3-0.6B/config.json").read_text())
    h, hd, layers = c["hidden_size"], c["head_dim"], c["num_hidden_layers"]
    q, kv = c["num_attention_heads"] * hd, c["num_key_value_heads"] * hd
    attention = h * q + 2 * h * kv + q * h + 2 * hd  # q, k, v, o projections (no bias); q and k norms
    mlp = 3 * h * c["intermediate_size"]  # gate, up, down
    per_layer = attention + mlp + 2 * h  # and the two RMSNorms around them
    embedding = c["vocab_size"] * h  # tied: the LM head is the same matrix
    assert c["tie_word_embeddings"] and not c["attention_bias"]
    model = build_model("Qwen/Qwen3-0.6B", device="meta")  # shapes only: nothing allocated
    assert sum(p.numel() for p in model.parameters()) == embedding + layers * per_layer + h
    assert model.get_output_embeddings().weight is model.get_input_embeddings().weight
    # the model card's "0.6B parameters, 0.44B non-embedding"
    assert round((layers * per_layer + h) / 1e9, 2) == 0.44 and round((embedding + layers * per_layer) / 1e9, 1) == 0.6


class FakeLaps(bench.Laps):
    def __init__(self, seconds: dict[str, float]):
        super().__init__()
        self.seconds = {name: [s, s / 2] for name, s in seconds.items()}  # wall, cpu


def test_the_stages_sum_to_the_step_and_the_vocabulary_parts_are_inside_them():
    laps = FakeLaps(
        {
            "rollout": 5.0,
            "sampler": 1.5,
            "reward": 0.25,
            "update_forward": 1.5,
            "update_contexts": 0.5,
            "nograd_logprobs": 1.0,
            "log_softmax_fwd": 0.75,
            "policy_update": 6.0,
            "log_softmax_bwd": 0.5,
        }
    )
    out = bench.stage_seconds(laps, step=(16.0, 8.0), logging=(1.0, 0.5))
    for kind, scale in (("wall", 1.0), ("cpu", 0.5)):
        s = out[kind]
        assert s["step"] == 17.0 * scale
        # the update's forwards (its shared prompts' too) are log-probs; the rest of it is backward+step
        assert s["logprobs"] == 3.0 * scale and s["backward_step"] == 4.0 * scale
        # every input is a multiple of 2^-3, so the sums are exact
        assert sum(s[stage] for stage in bench.STAGES) == s["step"]
        assert s["other"] == (17.0 - 5.0 - 0.25 - 3.0 - 4.0 - 1.0) * scale  # the parts are not taken twice
        split = bench.without_parts(s)
        assert split["rollout"] == 3.5 * scale and split["sampler"] == 1.5 * scale
        assert split["logprobs"] == 2.25 * scale and split["backward_step"] == 3.5 * scale
        assert sum(split.values()) == s["step"]


def test_the_floor_table_gives_each_vocabulary_part_its_bytes_at_the_memory_speed():
    seconds = {s: 1.0 for s in bench.STAGES} | {"step": 8.0, "sampler": 0.5, "log_softmax_fwd": 0.25}
    seconds["log_softmax_bwd"] = 0.25
    r = {
        "cpu": seconds,
        "flops": {"rollout": 2e9, "logprobs": 1e9, "backward_step": 2e9},
        "bytes": {"sampler": 4e9, "log_softmax_fwd": 1e9, "log_softmax_bwd": 2e9},
        "peak_matmul_flops": 1e10,
        "memory_bps": 2e10,
    }
    f = bench.floors(r)
    assert f["rollout"] == (0.5, 2.0, 0.2) and f["sampler"] == (0.5, 4.0, 0.2)
    assert f["log_softmax_bwd"] == (0.25, 2.0, 0.1)
    assert "| 10 (float32) | 20 |" in bench.floor_table({"grpo": r})


def test_a_real_model_runs_at_its_own_sizes_and_the_flags_win():
    assert bench.parse_args([]).sizes == Sizes(16, 8, 64) and bench.parse_args([]).steps == 4
    args = bench.parse_args(["--model", "smollm2_135m"])
    assert args.sizes == REAL_MODEL_SIZES == Sizes(8, 8, 64) and args.steps == 2
    assert bench.parse_args(["--model", "smollm2_135m", "--samples", "4", "--steps", "1"]).sizes == Sizes(8, 4, 64)
    assert default_sizes("qwen3_0_6b_random") == REAL_MODEL_SIZES
    assert model_overrides("smollm2_135m") == ["model=smollm2_135m", "data=word_problems"]
    assert model_overrides("mini") == ["model=mini"]


@pytest.mark.parametrize(
    "argv",
    [["--experiment", "smollm2_dsrl", "--model", "smollm2_135m"], ["--new-tokens", "0"], ["--steps", "0"]],
)
def test_bench_refuses_a_contradictory_command_line(argv, capsys):
    with pytest.raises(SystemExit):
        bench.parse_args(argv)
    assert "error:" in capsys.readouterr().err


def test_an_unknown_model_is_one_line_naming_the_options():
    with pytest.raises(SystemExit, match=r"--model qwen9: .*'qwen3_0_6b_random'.*'smollm2_135m'"):
        check_model("qwen9")


def test_bench_trl_keeps_the_mini_default_and_splits_a_real_models_batch():
    mini = bench_trl.parse_args([])
    assert (mini.sizes, mini.trl_rows, mini.steps) == (Sizes(16, 8, 64), 128, 4)
    assert bench_trl.result_name(mini) == "bench_trl"  # the mini run's history, as the docs page renders it
    real = bench_trl.parse_args(["--model", "smollm2_135m", "--bf16", "--trl-rows", "16"])
    assert (real.sizes, real.trl_rows, real.steps) == (Sizes(8, 8, 64), 16, 2)
    assert bench_trl.result_name(real) == "bench_trl_smollm2_135m_bf16_trl16rows"
    with pytest.raises(SystemExit):
        bench_trl.parse_args(["--model", "smollm2_135m", "--trl-rows", "12"])  # not a multiple of 8 samples


def test_bench_rollout_needs_the_vllm_interpreter(tmp_path, capsys):
    with pytest.raises(SystemExit):
        bench_rollout.parse_args(["--vllm-python", str(tmp_path / "missing")])
    assert "make .venv-vllm/.installed-stamp" in capsys.readouterr().err
    python = tmp_path / "python"
    python.write_text("")
    args = bench_rollout.parse_args(["--vllm-python", str(python)])
    assert (args.prompts, args.samples, args.new_tokens, args.temperature) == (8, 8, 64, 0.7)


def test_the_vllm_side_is_bound_to_as_many_cores_as_prerl_has_threads():
    assert bench_rollout.vllm_environment(1)["VLLM_CPU_OMP_THREADS_BIND"] == "0-0"
    assert bench_rollout.vllm_environment(3)["VLLM_CPU_OMP_THREADS_BIND"] == "0-2"


def test_the_growth_grid_varies_one_size_at_a_time():
    points = bench_growth.grid(Sizes(8, 8, 64))
    assert points == [Sizes(8, 4, 64), Sizes(8, 8, 64), Sizes(8, 16, 64), Sizes(8, 8, 32), Sizes(8, 8, 128)]
    assert bench_growth.grid(Sizes(2, 1, 1)) == [Sizes(2, 1, 1), Sizes(2, 2, 1), Sizes(2, 1, 2)]


def test_each_run_adds_a_file_to_its_benchmarks_history(tmp_path, monkeypatch):
    import common

    monkeypatch.setattr(common, "RESULTS", tmp_path)
    env = {"git_head": "abc1234", "git_dirty": True, "cpu_model": "Test CPU"}
    first = common.write_result("bench_x", {"environment": env, "value": 1})
    second = common.write_result("bench_x", {"environment": env | {"git_dirty": False}, "value": 2})
    assert first.parent == second.parent == tmp_path / "bench_x"
    assert first.name.endswith("_abc1234-dirty.json") and second.name.endswith("_abc1234.json")
    saved = json.loads(first.read_text())
    assert saved["benchmark"] == "bench_x" and saved["environment"]["cpu_model"] == "Test CPU" and saved["value"] == 1
    assert saved["command"][0] == "python"
    assert common.newest_result("bench_x") == second and common.newest_result("nothing") is None
