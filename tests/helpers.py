"""Shared test helpers: compose the real Hydra config with overrides, and a seeded fake grader."""

from __future__ import annotations

import sys
import zlib
from pathlib import Path

from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from prerl.config.schema import register_configs

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
