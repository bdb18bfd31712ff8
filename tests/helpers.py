"""Shared test helpers, imported as ``from helpers import ...`` from every tier's folder (tests/conftest.py puts
tests/ on sys.path): compose the real Hydra config with overrides, a seeded fake grader, tiny models, and
below them what the two halves of a file split by tier both need (each section names its users)."""

from __future__ import annotations

import contextlib
import sys
import zlib
from pathlib import Path
from typing import TYPE_CHECKING

from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from prerl.config.schema import register_configs
from prerl.data.eval_sets import BENCHMARKS

if TYPE_CHECKING:
    from torch import Tensor

CONF = str(Path(__file__).resolve().parents[1] / "conf")
# Wall-clock and memory: measured, not computed, so they differ between any two runs. The token counts
# and their running totals stay in: a resumed run must continue them from its checkpoint.
MEASURED = ("time/", "cost/train_seconds", "cost/peak_")


def compose_config(overrides: list[str], tmp_path, cache_dir: str):
    """The resolved DictConfig that ``python train.py <overrides>`` (micro smoke preset) would run."""
    register_configs()
    base = [
        "experiment=smoke",
        f"cache_dir={cache_dir}",
        f"output_dir={tmp_path / 'out'}",
        f"tracking.uri=sqlite:///{tmp_path / 'mlflow.db'}",
    ]
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        return compose(config_name="config", overrides=base + overrides)


def to_run(cfg):
    return OmegaConf.to_object(cfg), OmegaConf.to_container(cfg, resolve=True)


def coin_grader(responses: list[str], problems: list[int]) -> list[float]:
    """A deterministic stand-in for the math grader that marks about half the responses correct,
    so that micro-model groups have mixed rewards and every objective has samples to train on."""
    return [float(zlib.crc32(f"{i}:{r}".encode()) % 2) for i, r in enumerate(responses)]


def reward_training_with(monkeypatch, grader) -> None:
    """Score training rollouts with ``grader(texts, problems)`` instead of the training set's ``Grader``
    (evaluation keeps the real one)."""
    import torch

    from prerl.train.trainer import Experiment

    monkeypatch.setattr(
        Experiment, "reward", lambda self, rollout, problems: torch.tensor(grader(rollout.texts, problems))
    )


# Small enough for exact update checks: two layers, two query heads sharing one key/value head.
TINY_SHAPE = dict(
    vocab_size=48,
    hidden_size=32,
    intermediate_size=64,
    num_hidden_layers=2,
    num_attention_heads=2,
    num_key_value_heads=1,
)


def tiny_qwen3():
    """A randomly initialised two-layer Qwen3 (seed first)."""
    from transformers import Qwen3Config, Qwen3ForCausalLM

    return Qwen3ForCausalLM(Qwen3Config(**TINY_SHAPE, head_dim=16))


def tiny_llama():
    """A randomly initialised two-layer Llama (SmolLM2's architecture: no q/k norms, tied embeddings)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    return LlamaForCausalLM(LlamaConfig(**TINY_SHAPE, tie_word_embeddings=True))


class Tokenizer:
    """Stands in for a tokenizer where an engine only needs its special ids (nothing is decoded)."""

    eos_token_id = pad_token_id = 0

    def batch_decode(self, ids, skip_special_tokens=True):
        return ["" for _ in ids]


def hf_calls(prompts: list[list[int]], n: int, max_new_tokens: int, cfg) -> list[list[list[int]]]:
    """The prompts of each call the transformers engine makes to decode them (decoding itself stubbed);
    ``cfg``: its ``RolloutConfig``."""
    import torch

    from prerl.rollout.hf import HFEngine

    engine = HFEngine(torch.nn.Linear(1, 1), Tokenizer(), cfg)
    calls = []

    def record(chunk, n, temperature, top_p, max_new_tokens):
        calls.append(chunk)
        return [[1] for _ in range(len(chunk) * n)], [[0.0] for _ in range(len(chunk) * n)]

    engine._generate_chunk = record
    engine.generate(prompts, n, 1.0, 1.0, max_new_tokens)
    return calls


def four_seed_joblib_sweep(train_py, tracking_uri: str, sweep_dir, cache_dir: str) -> list[str]:
    """``python train.py -m``: seeds 0..3 of the smoke preset (2 updates) as 4 parallel joblib jobs."""
    return [
        sys.executable,
        str(train_py),
        "-m",
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=4",
        "seed=0,1,2,3",
        "experiment=smoke",
        "total_steps=2",
        "warmup_steps=1",
        f"cache_dir={cache_dir}",
        f"tracking.uri={tracking_uri}",
        f"hydra.sweep.dir={sweep_dir}",
    ]


def sweep_jobs(cmd: list[str], tracking_uri: str, experiment: str = "prerl-smoke") -> list:
    """Run a ``train.py -m`` command from the repository root; the MLflow runs of its jobs (not the
    sweep's parent run)."""
    import subprocess

    from mlflow.tracking import MlflowClient

    done = subprocess.run(cmd, cwd=Path(CONF).parent, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    client = MlflowClient(tracking_uri)
    return client.search_runs(
        [client.get_experiment_by_name(experiment).experiment_id], filter_string="tags.sweep_id != ''"
    )


# ---- The ablation tables' fixture runs (tests/unit/test_ablation_tables.py, tests/integration/test_ablation_tables_store.py):
# the params every fixture run logs, a DSRL run's own, and the row the tables give DSRL.
ABLATION_BASE = {
    "total_steps": "10",
    "objective.name": "nsr_prerl",
    "algorithm.name": "grpo",
    "optim.lr": "2e-05",
    "warmup_steps": "0",
}
ABLATION_DSRL = {"warmup_steps": "2"}
ABLATION_DSRL_ROW = "nsr_prerl(2)→grpo"


# ---- The transformers engine's plain-op step (tests/unit/test_decode.py, tests/integration/test_decode_models.py,
# tests/unit/test_rollout_correction.py)

# Logits of size ~10 computed in fp32 with sums in another order differ by ~1e-5 (a few ulps of each
# partial sum, over four layers); a stale cache, a wrong position or a missed mask is off by > 0.1.
LOGIT_TOLERANCE = 1e-4


def steps_side_by_side(model, prompts: list[list[int]], new: int) -> list[tuple[Tensor, Tensor]]:
    """The logits of the plain step and of the module step fed the same tokens (greedy by the module
    step's), over left-padded ``prompts``, rows leaving the batch half-way."""
    import torch

    from prerl.models.loading import cache_kwargs
    from prerl.rollout import decode, plain_step

    width = max(map(len, prompts))
    ids = torch.tensor([[0] * (width - len(p)) + p for p in prompts])
    attend = torch.ones((len(prompts), width + new), dtype=torch.long)
    for i, p in enumerate(prompts):
        attend[i, : width - len(p)] = 0
    position = (attend[:, :width].cumsum(-1) - 1).clamp(min=0)
    steps = []
    for _ in range(2):
        cache = decode.preallocated_cache(model, width + new)
        out = model(
            input_ids=ids, attention_mask=attend[:, :width], position_ids=position, **cache_kwargs(model, cache)
        )
        steps.append((decode.decode_step(model, cache, attend, plain_decode=len(steps) == 0), out.logits[:, -1]))
    (plain, _), (modules, logits) = steps
    assert isinstance(plain, plain_step.PlainStep) and isinstance(modules, decode.ModuleStep)
    pos, pairs = position[:, -1] + 1, []
    for t in range(new - 1):
        token = logits.argmax(-1)
        if t == new // 2:  # the first row finishes and leaves, as in the loop
            order = decode.compaction(torch.arange(len(token)) == 0)
            plain.keep(order), modules.keep(order)
            token, pos = token[order], pos[order]
        logits = modules(token, pos, width + t)
        pairs.append((plain(token, pos, width + t), logits))
        pos = pos + 1
    return pairs


# ---- Models and batches for the memory plan's checks (tests/unit/test_plan.py, tests/integration/test_plan_measured.py)

# HuggingFaceTB/SmolLM2-135M-Instruct's architecture (its config.json's fields the plan reads): a
# Llama with 9 query and 3 key/value heads of 64, tied embeddings. Built here from the dict, nothing is
# downloaded; tests that run it shrink the layers and the vocabulary.
SMOLLM2 = dict(
    model_type="llama",
    hidden_size=576,
    intermediate_size=1536,
    num_hidden_layers=30,
    num_attention_heads=9,
    num_key_value_heads=3,
    vocab_size=49152,
    tie_word_embeddings=True,
    max_position_embeddings=8192,
)
TINY_QWEN3 = dict(
    model_type="qwen3",
    vocab_size=96,
    hidden_size=64,
    intermediate_size=160,
    num_hidden_layers=3,
    num_attention_heads=4,
    num_key_value_heads=2,
    head_dim=16,
    tie_word_embeddings=True,
)
SMALL_SMOLLM2 = {**SMOLLM2, "num_hidden_layers": 2, "vocab_size": 512}


def tiny_model(config: dict, dtype=None, checkpointing: bool = False):
    """``config``'s model, seeded, in ``dtype`` (fp32 by default), with the analytic RMSNorm as
    prerl/models/loading.py loads a policy, in training mode."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from prerl.models.rms_norm import use_analytic_rms_norm

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(AutoConfig.for_model(**config)).to(dtype or torch.float32)
    use_analytic_rms_norm(model)  # as prerl/models/loading.py loads a policy
    if checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    return model.train()


def padded_rows(rows: int, width: int, vocab: int):
    """Rows of one context token and a response, the second row shorter (so the batch has a padding mask)."""
    import torch

    from prerl.train.logprobs import pack

    g = torch.Generator().manual_seed(1)
    lengths = [width - 1 - (2 if r == 1 else 0) for r in range(rows)]
    return pack([[1]] * rows, [torch.randint(3, vocab, (n,), generator=g).tolist() for n in lengths], 0)


def autocast(on: bool):
    """bf16 autocast on the CPU, or nothing."""
    import torch

    return torch.autocast("cpu", dtype=torch.bfloat16) if on else contextlib.nullcontext()


def main_phase_config():
    from prerl.config.schema import AlgorithmConfig

    return AlgorithmConfig()


def optim_config(tokens: int):
    from prerl.config.schema import OptimConfig

    return OptimConfig(micro_batch_tokens=tokens)


# ---- Plug-ins (tests/unit/test_plugins.py, tests/integration/test_plugins_run.py)


@contextlib.contextmanager
def registries_restored():
    """What a plug-in registers inside leaves with it (the registries are process-wide)."""
    from prerl.algo.advantages import ADVANTAGE_ESTIMATORS
    from prerl.algo.losses import AGGREGATIONS, KL_ESTIMATORS, POLICY_LOSS_STATS, POLICY_LOSSES
    from prerl.algo.objectives import OBJECTIVE_ADVANTAGES, SAMPLE_SELECTIONS
    from prerl.algo.registry import load_plugins

    load_plugins()
    registries = [
        ADVANTAGE_ESTIMATORS,
        AGGREGATIONS,
        KL_ESTIMATORS,
        POLICY_LOSS_STATS,
        POLICY_LOSSES,
        OBJECTIVE_ADVANTAGES,
        SAMPLE_SELECTIONS,
    ]
    saved = [(dict(r), dict(r.checks), dict(r.flags), dict(r.knobs)) for r in registries]
    yield
    for registry, (parts, checks, flags, knobs) in zip(registries, saved):
        registry.clear()
        registry.update(parts)
        registry.checks, registry.flags, registry.knobs = checks, flags, knobs


# ---- The real model's runs (tests/integration/test_smollm2.py, tests/process/test_smollm2_processes.py):
# SmolLM2-135M-Instruct on the word problems, at tiny sizes (two prompts, two samples, a few tokens).
SMOLLM2_RUN = ["model=smollm2_135m", "data=word_problems", "eval=word_problems"]
SMOLLM2_TINY_SIZES = [
    "prompts_per_step=2",
    "rollout.samples_per_prompt=2",
    "rollout.max_new_tokens=12",
    "eval.samples_per_prompt=1",
    "eval.max_new_tokens=12",
    "eval.sets.test.limit=2",
    "eval.sets.ood.limit=2",
    "eval.sets.math500_level1.limit=2",
    "data.train_problems=16",
    "tracking.experiment=smollm2-tests",
]


# ---- A tracking client whose store goes away (tests/unit/test_tracking.py, tests/integration/test_tracking_store.py)


class FlakyClient:
    """Records what it is sent; while ``down`` it fails as MLflow's HTTP client does for a dead server."""

    def __init__(self):
        self.down, self.metrics, self.artifacts, self.status = False, [], [], None

    def check(self):
        if self.down:
            from mlflow.exceptions import MlflowException

            raise MlflowException(
                "API request to http://127.0.0.1:5/api/2.0/mlflow/runs/log-batch failed with "
                "exception HTTPConnectionPool: Max retries exceeded (Connection refused)"
            )

    def log_batch(self, run_id, metrics=()):
        self.check()
        self.metrics += [(m.step, m.key, m.value) for m in metrics]

    def log_dict(self, run_id, data, artifact):
        self.check()
        self.artifacts.append(artifact)

    def set_terminated(self, run_id, status):
        self.check()
        self.status = status


# ---- The benchmarks' fixtures and oracles (tests/unit/test_benchmarks.py; humaneval's oracle runs programs in
# the sandbox, processes of their own: tests/process/test_benchmarks_code.py)
BENCHMARK_FIXTURES = Path(__file__).resolve().parent / "fixtures" / "benchmarks"
SHIPPED_EVAL_SETS = Path(CONF).parent / "prerl" / "data" / "eval_sets" / "shipped"
BENCHMARK_KINDS = {
    "math_train": "math",
    "math500": "math",
    "math500_level1": "math",
    "amc23": "math",
    "aime24": "math",
    "aime25": "math",
    "minerva": "math",
    "olympiadbench": "math",
    "gpqa_diamond": "multiple_choice",
    "mmlu_pro": "multiple_choice",
    "bbh": "bbh",
    "humaneval": "code",
}


BENCHMARK_FILES = {  # each benchmark's fixture file
    name: BENCHMARK_FIXTURES / (name + (".jsonl.zip" if name == "gpqa_diamond" else ".jsonl")) for name in BENCHMARKS
}
BENCHMARK_FILES["math500_level1"] = (
    SHIPPED_EVAL_SETS / "math500_level1.jsonl"
)  # a slice: its shipped copy is its fixture


def fixture_lines(path):
    if path.suffix == ".zip":
        import zipfile

        from prerl.data.eval_sets.registry import GPQA_PASSWORD

        return zipfile.ZipFile(path).open("test.jsonl", pwd=GPQA_PASSWORD).read().decode().split("\n")[:-1]
    return path.read_text().split("\n")[:-1]


def oracle_scores(ds, shuffled=False):
    from prerl.data.eval_sets import references
    from prerl.rollout.oracle import derangement
    from prerl.scoring import ScoreSettings, grade

    refs = references(ds)
    if shuffled:
        refs = [refs[j] for j in derangement(len(refs), seed=0)]
    return grade(ds["scorer"], refs, ds["answer"], ds["metadata"], ScoreSettings(workers=2, code_timeout_s=10))


def check_loader_and_oracle(name: str) -> None:
    """The loader gives one record shape, the fixture's ids in order, and the oracle scores full marks."""
    import json

    from prerl.data.eval_sets import load_benchmark
    from prerl.data.eval_sets.prompts import MATH_SYSTEM

    ds = load_benchmark(name, str(BENCHMARK_FILES[name]))
    assert ds.column_names == ["id", "messages", "answer", "scorer", "metadata"]
    assert set(ds["scorer"]) == {BENCHMARK_KINDS[name]}
    rows = [json.loads(line) for line in fixture_lines(BENCHMARK_FILES[name])]
    source_ids = [r.get("id") or r["unique_id"] for r in rows if r["answer"]]  # the Hub's MATH-500: unique_id
    assert ds["id"] == source_ids
    for row in ds:
        assert [m["role"] for m in row["messages"]] == ["system", "user"] and row["answer"].strip()
        assert row["metadata"]["reference"]
    if BENCHMARK_KINDS[name] == "math":
        assert ds[0]["messages"][0]["content"] == MATH_SYSTEM
    assert oracle_scores(ds) == [1.0] * len(ds)


def check_shuffled_oracle(name: str) -> None:
    """An oracle that answers every problem with another problem's reference scores nothing."""
    from prerl.data.eval_sets import load_benchmark

    ds = load_benchmark(name, str(BENCHMARK_FILES[name]))
    assert sum(oracle_scores(ds, shuffled=True)) == 0
