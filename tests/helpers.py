"""Shared test helpers: compose the real Hydra config with overrides, and a seeded fake grader."""

from __future__ import annotations

import zlib
from pathlib import Path

from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from prerl.config import register_configs

CONF = str(Path(__file__).resolve().parents[1] / "conf")


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


def coin_grader(responses: list[str], golds: list[str]) -> list[float]:
    """A deterministic stand-in for the math grader that marks about half the responses correct,
    so that micro-model groups have mixed rewards and every objective has samples to train on."""
    return [float(zlib.crc32(f"{i}:{r}".encode()) % 2) for i, r in enumerate(responses)]
