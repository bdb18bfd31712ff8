"""Sweeps as ``python train.py -m``: jobs really run on the submitit launcher, a relaunch skips finished
ones, an Optuna study resumes after an interruption, and `make ablation-table` tables a plain multirun."""

import csv
import os
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from mlflow.tracking import MlflowClient

from analysis import ablation_table

ROOT = Path(__file__).resolve().parents[2]


def train(args, tmp_path, cache_dir, name):
    """``python train.py -m <args>`` on the micro model, into a store and sweep folder under tmp_path."""
    cmd = [
        sys.executable,
        str(ROOT / "train.py"),
        "-m",
        "experiment=smoke",
        f"cache_dir={cache_dir}",
        f"tracking.uri=sqlite:///{tmp_path / 'mlflow.db'}",
        f"hydra.sweep.dir={tmp_path / name}",
        *args,
    ]
    done = subprocess.run(
        cmd,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "HF_HUB_OFFLINE": "1"},
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout + done.stderr


def table_cells(path: Path) -> dict:
    """(row, column) -> the CSV line of a table written by ``make ablation-table``."""
    with open(path) as handle:
        return {(r["row"], r["column"]): r for r in csv.DictReader(handle)}


def runs_of(tmp_path):
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    exp = client.get_experiment_by_name("prerl-smoke")
    jobs = "attributes.status = 'FINISHED' and tags.sweep_id != ''"  # the jobs, not their parent run
    return client, client.search_runs([exp.experiment_id], filter_string=jobs)


def test_warmup_sweep_on_submitit_then_rerun_skips_and_table_has_the_logged_values(tmp_path, cache_dir):
    sweep = ["+sweep=warmup", "warmup_steps=0,1", "seed=0", "total_steps=1"]
    train(sweep + ["hydra/launcher=submitit_local"], tmp_path, cache_dir, "first")
    client, runs = runs_of(tmp_path)
    assert sorted(r.data.params["warmup_steps"] for r in runs) == ["0", "1"]  # two real jobs, both finished
    assert len({r.data.tags["config_hash"] for r in runs}) == 2
    assert len(list((tmp_path / "first" / ".submitit").glob("*/*_result.pkl"))) == 2  # two submitit jobs ran

    log = train(sweep, tmp_path, cache_dir, "again")  # relaunch: both jobs are already finished
    assert log.count("skipped: config_hash") == 2
    assert len(runs_of(tmp_path)[1]) == 2

    out = ablation_table.main(
        [
            "--uri",
            f"sqlite:///{tmp_path / 'mlflow.db'}",
            "--out",
            str(tmp_path / "tables"),
            "--tables",
            "warmup",
            "--no-log",
        ]
    )
    cells = table_cells(out / "warmup.csv")
    for run in runs:
        logged = run.data.metrics["eval/test/avg_at_2"]  # the value at the last step
        history = client.get_metric_history(run.info.run_id, "eval/test/avg_at_2")
        assert logged == max(history, key=lambda m: m.step).value
        cell = cells[(f"S={run.data.params['warmup_steps']}", "test")]
        assert float(cell["mean"]) == pytest.approx(100 * logged) and cell["n"] == "1"


def test_optuna_study_resumes_after_an_interruption(tmp_path, cache_dir):
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    # An earlier launch died while running trial 0 (seed 7): it is left RUNNING in the study.
    study = optuna.create_study(storage=storage, study_name="s", direction="maximize")
    study.enqueue_trial({"seed": 7})
    study.ask({"seed": optuna.distributions.IntDistribution(0, 9)})
    search = [
        "hydra/sweeper=optuna",
        f"hydra.sweeper.storage={storage}",
        "hydra.sweeper.study_name=s",
        "total_steps=0",
        "warmup_steps=0",
        "seed=range(0,10)",
    ]

    train(search + ["hydra.sweeper.n_trials=2"], tmp_path, cache_dir, "first")
    study = optuna.load_study(storage=storage, study_name="s")
    states = [t.state for t in study.trials]
    assert states.count(optuna.trial.TrialState.FAIL) == 1 and states.count(optuna.trial.TrialState.COMPLETE) == 2
    assert study.trials[1].params == {"seed": 7}  # the interrupted trial's parameters ran again
    assert "7" in {r.data.params["seed"] for r in runs_of(tmp_path)[1]}

    train(search + ["hydra.sweeper.n_trials=3"], tmp_path, cache_dir, "again")  # resumes: one more trial only
    study = optuna.load_study(storage=storage, study_name="s")
    assert sum(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials) == 3
    assert len(study.trials) == 4
    assert (tmp_path / "again" / "optimization_results.yaml").exists()


def test_a_plain_multirun_then_ablation_table_gives_its_table(tmp_path, cache_dir):
    """The headline flow as typed: ``python train.py -m warmup_steps=0,1 seed=1,2`` then ``make
    ablation-table`` with no arguments gives the warm-up table of exactly that multirun's jobs, with
    intervals and Δs from S=0 (plain GRPO)."""
    train(["warmup_steps=0,1", "total_steps=1"], tmp_path, cache_dir, "plain")
    client, runs = runs_of(tmp_path)
    assert {r.data.tags["sweep"] for r in runs} == {"multirun"}
    assert {r.data.tags["sweep_id"] for r in runs} == {str(tmp_path / "plain")}
    train(["seed=3", "total_steps=0", "warmup_steps=0"], tmp_path, cache_dir, "older")  # another multirun...
    train(["warmup_steps=0,1", "total_steps=1", "seed=1,2"], tmp_path, cache_dir, "newest")  # ...and the newest
    newest = [r for r in runs_of(tmp_path)[1] if r.data.tags["sweep_id"] == str(tmp_path / "newest")]

    out = ablation_table.main(
        ["--uri", f"sqlite:///{tmp_path / 'mlflow.db'}", "--out", str(tmp_path / "t"), "--no-log"]
    )
    assert [p.name for p in sorted(out.glob("*.md"))] == ["tables.md", "warmup.md"]
    assert len(newest) == 4
    cells, means = table_cells(out / "warmup.csv"), {}
    for s in ("0", "1"):  # the newest multirun's values (the other multiruns not mixed in), two seeds a row
        logged = [100 * r.data.metrics["eval/test/avg_at_2"] for r in newest if r.data.params["warmup_steps"] == s]
        cell, means[s] = cells[(f"S={s}", "test")], sum(logged) / 2
        assert float(cell["mean"]) == pytest.approx(means[s]) and cell["n"] == "2"
        assert float(cell["lo"]) <= means[s] <= float(cell["hi"])
    assert float(cells[("S=1", "test")]["delta"]) == pytest.approx(means["1"] - means["0"])
    text = (out / "warmup.md").read_text()
    assert "Δ Avg vs S=0" in text and "| baseline |" in text and "paired hierarchical bootstrap" in text
