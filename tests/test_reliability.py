"""Faults and hostile input: kill and resume, parallel sweeps, NaN losses, bad stores, bad text."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from mlflow.tracking import MlflowClient

import prerl.algo.losses as losses
import prerl.train.trainer as trainer
from helpers import MEASURED, compose_config, four_seed_joblib_sweep, reward_training_with, sweep_jobs, to_run
from prerl.train import checkpoint
from prerl.scoring.rewards import math_reward

ROOT = Path(__file__).resolve().parents[1]


def train_cmd(out: Path, db: Path, cache_dir: str, *extra: str) -> list[str]:
    return [
        sys.executable,
        "train.py",
        "experiment=smoke",
        "total_steps=6",
        "warmup_steps=3",
        "checkpoint.every_steps=1",
        "eval.every_steps=3",
        f"cache_dir={cache_dir}",
        f"output_dir={out}",
        f"hydra.run.dir={out}",
        f"tracking.uri=sqlite:///{db}",
        *extra,
    ]


def histories(db: Path) -> dict[str, list[tuple[int, float]]]:
    client = MlflowClient(f"sqlite:///{db}")
    (run,) = client.search_runs([client.get_experiment_by_name("prerl-smoke").experiment_id])
    assert run.info.status == "FINISHED"
    return {
        key: [(m.step, m.value) for m in client.get_metric_history(run.info.run_id, key)]
        for key in run.data.metrics
        if not key.startswith(MEASURED)
    }


def test_sigkill_then_resume_logs_exactly_what_an_uninterrupted_run_logs(tmp_path, cache_dir):
    straight = tmp_path / "straight"
    subprocess.run(train_cmd(straight, tmp_path / "a.db", cache_dir), cwd=ROOT, check=True, capture_output=True)

    crashed, db = tmp_path / "crashed", tmp_path / "b.db"
    proc = subprocess.Popen(
        train_cmd(crashed, db, cache_dir),
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.time() + 600
    while not (crashed / "checkpoints" / "step_000004.pt").exists():  # die somewhere after step 4
        assert proc.poll() is None and time.time() < deadline, "the run ended before it could be killed"
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (crashed / "final_policy").exists()
    subprocess.run(train_cmd(crashed, db, cache_dir), cwd=ROOT, check=True, capture_output=True)

    expected, resumed = histories(tmp_path / "a.db"), histories(db)
    # same steps, no duplicates, same floats: bit-exact, as both runs use this machine's kernels, threads
    # and process layout (across machines a resumed run is another sample: docs/reproducibility.md)
    assert resumed == expected
    assert [step for step, _ in resumed["train/accuracy"]] == [1, 2, 3, 4, 5, 6]


def test_a_truncated_checkpoint_falls_back_to_the_previous_one(tmp_path):
    checkpoint.save(tmp_path, 1, {"step": 1}, keep_last=3)
    checkpoint.save(tmp_path, 2, {"step": 2}, keep_last=3)
    (tmp_path / "step_000002.pt").write_bytes(b"\x80\x02 truncated")
    assert checkpoint.load_latest(tmp_path)["step"] == 1
    for step in (3, 4, 5):
        checkpoint.save(tmp_path, step, {"step": step}, keep_last=3)
    assert [p.name for p in checkpoint.checkpoints(tmp_path)] == ["step_000003.pt", "step_000004.pt", "step_000005.pt"]


def test_nan_loss_skips_updates_and_stops_the_run(tmp_path, cache_dir, monkeypatch):
    def nan_loss(logp, old, adv, mask, cfg):
        return logp * float("nan"), {name: torch.tensor(0.0) for name in losses.POLICY_LOSS_STATS["clipped"]}

    monkeypatch.setitem(losses.POLICY_LOSSES, "clipped", nan_loss)
    reward_training_with(monkeypatch, lambda r, g: [float(i % 2) for i in range(len(r))])
    cfg, resolved = to_run(
        compose_config(["warmup_steps=0", "total_steps=6", "optim.max_nonfinite_updates=2"], tmp_path, cache_dir)
    )
    with pytest.raises(RuntimeError, match="3 updates in a row had a NaN/inf"):
        trainer.train(cfg, resolved)
    client = MlflowClient(cfg.tracking.uri)
    (run,) = client.search_runs([client.get_experiment_by_name("prerl-smoke").experiment_id])
    assert run.info.status == "FAILED"
    skipped = [m.value for m in client.get_metric_history(run.info.run_id, "train/skipped_update")]
    assert skipped == [1.0, 1.0]  # the third is raised before it is logged


def test_unreachable_tracking_store_fails_before_any_model_loads(tmp_path, cache_dir, monkeypatch):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    cfg, resolved = to_run(compose_config([], tmp_path, cache_dir))
    cfg.tracking.uri = "http://127.0.0.1:9"
    monkeypatch.setattr(trainer, "load_policy", lambda *a: pytest.fail("model loaded before the store check"))
    with pytest.raises(RuntimeError, match="unreachable"):
        trainer.train(cfg, resolved)


def test_parallel_joblib_sweep_into_one_sqlite_store_loses_nothing(tmp_path, cache_dir):
    db = tmp_path / "par.db"
    cmd = four_seed_joblib_sweep("train.py", f"sqlite:///{db}", tmp_path / "multirun", cache_dir)
    runs, client = sweep_jobs(cmd, f"sqlite:///{db}"), MlflowClient(f"sqlite:///{db}")
    assert sorted(r.data.params["seed"] for r in runs) == ["0", "1", "2", "3"]
    for run in runs:
        assert run.info.status == "FINISHED"
        assert len(run.data.params) > 50
        steps = [m.step for m in client.get_metric_history(run.info.run_id, "train/accuracy")]
        assert steps == [1, 2]
        assert [m.step for m in client.get_metric_history(run.info.run_id, "eval/test/avg_at_2")] == [0, 2]


def test_a_config_typo_is_one_clear_error(tmp_path):
    done = subprocess.run([sys.executable, "train.py", "algoritm=grpo"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode != 0 and "algoritm" in done.stderr
    done = subprocess.run([sys.executable, "train.py", "algorithm=grpoo"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode != 0 and "Available options" in done.stderr and "dr_grpo" in done.stderr


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    "response",
    [
        r"\boxed{10^{10^{10^{10^{10^{10}}}}}}",  # an enormous exponent
        r"\boxed{" + r"\frac{1}{" * 300 + "2" + "}" * 600,  # deeply nested LaTeX
        "\udcff\udcfe broken bytes \\boxed{\udcff}",  # non-UTF-8 input decoded with surrogateescape
        r"\boxed{1}\boxed{2}\boxed{",  # several boxes, the last unclosed
    ],
)
def test_hostile_completions_score_zero_without_hanging(response):
    assert math_reward(response, "3") == 0.0


@pytest.mark.timeout(60)
def test_a_verdict_that_swallows_its_own_timeout_still_ends(monkeypatch):
    """math-verify's numeric comparison catches every ``Exception``, its timeout included, and may then
    compare for ever (``\\boxed{10^{10^{10^{10}}}}`` did, in one full test run). A stand-in that swallows
    every ``Exception`` for ever: the CPU-time guard still ends the verdict, as a wrong answer."""
    import prerl.scoring.rewards as rewards

    def stubborn(gold, predicted, timeout_seconds=None):
        while True:
            try:
                sum(range(10_000))
            except Exception:  # noqa: BLE001 - what the guard must get through
                pass

    monkeypatch.setattr(rewards, "verify", stubborn)
    monkeypatch.setattr(rewards, "CPU_GUARD_S", 0.2)
    assert rewards._math_verify.__wrapped__("x^2 + 1", "3", 2, 2) == 0.0
    assert signal.getsignal(signal.SIGVTALRM) == signal.SIG_DFL  # the guard left nothing behind
    assert signal.getitimer(signal.ITIMER_VIRTUAL) == (0.0, 0.0)
