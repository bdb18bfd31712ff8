"""Training against a real MLflow tracking server over HTTP (as ``make mlflow-server`` starts it):
parallel joblib jobs nested under a sweep parent, everything read back; re-evaluation from a run id;
the server going away mid-run."""

import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import mlflow
import pytest
from helpers import four_seed_joblib_sweep
from mlflow.tracking import MlflowClient
from mlflow_server import MlflowServer

from prerl.tracking.tracker import flatten

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "HF_HUB_OFFLINE": "1"}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = MlflowServer(tmp_path_factory.mktemp("mlflow-server")).start()
    yield srv
    srv.stop()


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_four_parallel_joblib_jobs_over_http_are_all_read_back(server, tmp_path, cache_dir):
    sweep_dir = tmp_path / "multirun"
    cmd = four_seed_joblib_sweep(ROOT / "train.py", server.uri, sweep_dir, cache_dir)
    done = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=900, env=ENV)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    client = MlflowClient(server.uri)
    experiment = client.get_experiment_by_name("prerl-smoke")
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    runs = client.search_runs([experiment.experiment_id])
    (parent,) = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    jobs = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(runs) == 5 and len(jobs) == 4
    assert parent.info.status == "FINISHED" and parent.data.params["swept.seed"] == "0,1,2,3"
    assert parent.data.metrics["sweep/jobs"] == 4 and parent.data.metrics["sweep/finished"] == 4
    best = max(jobs, key=lambda r: r.data.metrics["eval/test/avg_at_2"])
    assert parent.data.metrics["best/eval/test/avg_at_2"] == best.data.metrics["eval/test/avg_at_2"]
    assert parent.data.tags["best_run_id"] in {r.info.run_id for r in jobs}

    assert sorted(r.info.run_name for r in jobs) == [f"dsrl-nsr_prerl1-grpo-s{s}" for s in range(4)]
    for run in jobs:
        run_id = run.info.run_id
        assert run.info.status == "FINISHED"
        tags = run.data.tags
        assert tags["method"] == "dsrl" and tags["sweep"] == "multirun" and tags["device"] == "cpu"
        assert len(tags["mlflow.source.git.commit"]) == 40 and tags["git_dirty"] in ("true", "false")
        # every parameter: the flattened config that the run also logged as config.json
        config = json.loads(Path(client.download_artifacts(run_id, "config.json", tempfile.mkdtemp())).read_text())
        expected = flatten(config)  # params print enums as Name.value, the JSON as value
        assert run.data.params.keys() == expected.keys()
        assert all(v == expected[k] or v.endswith(f".{expected[k]}") for k, v in run.data.params.items())
        # every metric: one value per step, none twice
        for key in run.data.metrics:
            steps = [m.step for m in client.get_metric_history(run_id, key)]
            assert steps == sorted(set(steps)), key
            expected = [0, 2] if key.startswith("eval/") else [1, 2]
            if key.startswith(("eval/", "train/")):
                assert steps == expected, key
        assert {
            "train/accuracy",
            "train/loss",
            "eval/test/avg_at_2",
            "eval/ood/avg_at_2",
            "cost/generated_tokens_total",
        } <= set(run.data.metrics)
        # every artifact: per-problem counts, sample tables; the final policy, a model of the run, byte for byte
        listed = {a.path for a in client.list_artifacts(run_id)}
        assert {"config.json", "per_problem", "samples"} <= listed
        per_problem = {a.path for a in client.list_artifacts(run_id, "per_problem")}
        assert per_problem == {f"per_problem/{s}_step{n:05d}.json" for s in ("test", "ood") for n in (0, 2)}
        job_dir = sweep_dir / str(int(run.data.params["seed"]))
        (output,) = run.outputs.model_outputs  # uploaded through the server, as the run's artifacts are
        model = client.get_logged_model(output.model_id)
        assert model.name == "policy" and model.source_run_id == run_id
        # (evaluate.py below reads it as runs:/<run_id>/policy; MLflow 3.17 resolves that through the
        # global tracking URI only, which this process leaves alone)
        local = Path(mlflow.artifacts.download_artifacts(model.artifact_location, tracking_uri=server.uri))
        for name in ("model.safetensors", "config.json"):
            assert sha256(local / "model" / name) == sha256(job_dir / "final_policy" / name)
        assert sha256(local / "components" / "tokenizer" / "tokenizer.json") == sha256(
            job_dir / "final_policy" / "tokenizer.json"
        )
        assert [(d.dataset.name, d.tags[0].value) for d in run.inputs.dataset_inputs] == [
            ("mini/train", "training"),
            ("mini/test", "eval"),
            ("mini/ood", "eval"),
        ]

    # `make ablation-table` on the multirun logs its tables to the parent run
    from analysis import ablation_table

    ablation_table.main(["--uri", server.uri, "--out", str(tmp_path / "tables")])
    tabled = {a.path for a in client.list_artifacts(parent.info.run_id, "ablation_table")}
    assert {"ablation_table/tables.md", "ablation_table/multirun.csv"} <= tabled

    # a run found in the UI is re-evaluated from its id: the policy is downloaded through the server
    evaluate = [
        sys.executable,
        str(ROOT / "evaluate.py"),
        "experiment=smoke",
        f"model.path=runs:/{best.info.run_id}/policy",
        f"cache_dir={tmp_path / 'eval-cache'}",
        f"tracking.uri={server.uri}",
        f"hydra.run.dir={tmp_path / 'ev'}",
    ]
    done = subprocess.run(evaluate, cwd=tmp_path, capture_output=True, text=True, timeout=600, env=ENV)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "eval/test/avg_at_2" in done.stdout
    weights = tmp_path / "eval-cache" / "mlflow" / best.info.run_id / "policy" / "model.safetensors"
    assert sha256(weights) == sha256(sweep_dir / best.data.params["seed"] / "final_policy" / "model.safetensors")
    (evaluation,) = client.search_runs([experiment.experiment_id], filter_string="tags.job = 'evaluate'")
    assert evaluation.info.status == "FINISHED" and "eval/test/avg_at_2" in evaluation.data.metrics


def test_a_server_that_dies_mid_run_loses_no_step(tmp_path, cache_dir):
    """The server is killed after step 2 and stays away: the run trains on, queues the rest on disk and
    ends failing, naming what is not recorded. With the server back, the same command sends it all."""
    srv = MlflowServer(tmp_path / "server").start()
    out = tmp_path / "run"
    cmd = [
        sys.executable,
        str(ROOT / "train.py"),
        "experiment=smoke",
        "total_steps=6",
        "warmup_steps=2",
        "checkpoint.every_steps=1",
        "eval.every_steps=3",
        "tracking.outage_wait_s=2",
        f"cache_dir={cache_dir}",
        f"output_dir={out}",
        f"hydra.run.dir={out}",
        f"tracking.uri={srv.uri}",
    ]
    try:
        proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=ENV)
        while not (out / "checkpoints" / "step_000002.pt").exists():
            assert proc.poll() is None, proc.stdout.read()[-3000:]
            time.sleep(0.05)
        srv.stop()
        log, _ = proc.communicate(timeout=600)
        assert proc.returncode != 0
        assert "not recorded there: metrics of steps" in log and "mlflow_pending.jsonl" in log, log[-3000:]
        waiting = [json.loads(line) for line in (out / "mlflow_pending.jsonl").read_text().splitlines()]
        assert waiting[-1] == {"run_id": waiting[0]["run_id"], "kind": "status", "status": "FINISHED"}
        assert any(item["kind"] == "model" and item["artifact"] == "policy" for item in waiting)

        srv.start()
        done = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=600, env=ENV)
        assert done.returncode == 0, done.stderr[-3000:]
        assert not (out / "mlflow_pending.jsonl").exists()
        client = MlflowClient(srv.uri)
        (run,) = client.search_runs([client.get_experiment_by_name("prerl-smoke").experiment_id])
        assert run.info.status == "FINISHED" and run.info.run_id == waiting[0]["run_id"]
        for key in ("train/accuracy", "train/loss", "time/step_s", "cost/generated_tokens_total"):
            assert [m.step for m in client.get_metric_history(run.info.run_id, key)] == [1, 2, 3, 4, 5, 6], key
        assert [m.step for m in client.get_metric_history(run.info.run_id, "eval/test/avg_at_2")] == [0, 3, 6]
        (output,) = run.outputs.model_outputs  # the policy, sent by the relaunch, a model of the run
        model = client.get_logged_model(output.model_id)
        assert model.name == "policy" and model.experiment_id == run.info.experiment_id
        assert "model/model.safetensors" in {
            a.path for a in client.list_logged_model_artifacts(model.model_id, "model")
        }
    finally:
        srv.stop()
