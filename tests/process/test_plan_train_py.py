"""The start-up refusal the memory plan (prerl/plan) drives: ``python train.py`` with a config that cannot
fit exits with status 2 and one line, before any weight loads."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from prerl.launch.cli import EXIT_BAD_CONFIG

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def grouped_kv_on_cpu(monkeypatch):
    monkeypatch.setenv("TRANSFORMERS_SDPA_FORCE_GQA", "1")  # what prerl/models/loading.py sets for CPU runs


def test_train_refuses_before_any_weight_loads(tmp_path):
    """The micro model would load (it ships); with 1 MiB of device memory the plan refuses it first: exit
    status 2, one line, and no MLflow store, output folder or checkpoint (the store opens before the weights)."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    store = tmp_path / "mlflow.db"
    done = subprocess.run(
        [sys.executable, str(ROOT / "train.py"), "experiment=smoke", "plan.device_memory=1MiB"]
        + [f"tracking.uri=sqlite:///{store}", f"output_dir={tmp_path / 'out'}", f"cache_dir={tmp_path / 'cache'}"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
    )
    assert done.returncode == EXIT_BAD_CONFIG, done.stderr[-2000:]
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("config error: memory plan: the "), done.stderr
    assert not store.exists() and not (tmp_path / "out").exists() and not (tmp_path / "cache").exists()
