"""What a run records about itself (name, datasets, system metrics, a sweep's parent run) in a real MLflow
store, and how a run fails when its store goes away or cannot be reached.

Against a fake client in tests/unit/test_tracking.py; against a real tracking server in
tests/process/test_tracking_server.py."""

import json
import time

import pytest
from helpers import FlakyClient, compose_config, to_run
from mlflow.exceptions import MlflowException

from prerl.config.schema import TrackingConfig
from prerl.tracking import run_info
from prerl.tracking.tracker import NullTracker, Outbox, Tracker


def resolved(tmp_path, cache_dir, *overrides):
    return to_run(compose_config(list(overrides), tmp_path, cache_dir))[1]


@pytest.mark.parametrize(
    "overrides, name, method",
    [
        ([], "dsrl-nsr_prerl2-grpo-s0", "dsrl"),  # the smoke preset: 2 warm-up updates of 4
        (["warmup_steps=0", "seed=3"], "grpo-s3", "grpo"),
        (["warmup_steps=4"], "nsr_prerl-s0", "nsr_prerl"),  # the objective for the whole run
        (["objective=nsr_rl", "algorithm=dapo"], "nsr_rl2-dapo-s0", "nsr_rl_warmup"),
    ],
)
def test_run_name_says_method_phases_and_seed(tmp_path, cache_dir, overrides, name, method):
    cfg = resolved(tmp_path, cache_dir, *overrides)
    assert run_info.run_name(cfg) == name
    assert run_info.method(cfg) == method


def test_a_multirun_job_is_named_by_its_swept_overrides_and_run_name_wins(tmp_path, cache_dir):
    cfg = resolved(tmp_path, cache_dir, "seed=1", "optim.lr=0.001")
    job = {
        "multirun": True,
        "overrides": [
            "experiment=smoke",
            "seed=1",
            "optim.lr=0.001",
            "total_steps=4",
            f"cache_dir={cache_dir}",
            "tracking.uri=sqlite:///x.db",
        ],
    }
    # without the parent's list of swept keys: every override that changes what the job computes
    assert run_info.run_name(cfg, job) == "dsrl-nsr_prerl2-grpo-s1 optim.lr=0.001 total_steps=4"
    assert run_info.run_name(cfg, {**job, "swept": ["seed", "optim.lr"]}) == "dsrl-nsr_prerl2-grpo-s1 optim.lr=0.001"
    assert run_info.run_name(cfg, {**job, "multirun": False}) == "dsrl-nsr_prerl2-grpo-s1"
    named = resolved(tmp_path, cache_dir, "tracking.run_name=mine")
    assert run_info.run_name(named, job) == "mine"


def test_datasets_are_named_with_source_and_a_content_digest(tmp_path, cache_dir):
    from prerl.data import splits as data_lib

    cfg = resolved(tmp_path, cache_dir)
    other = resolved(tmp_path, cache_dir, "data.seed=99")

    def inputs(c):
        from prerl.config.schema import DataConfig

        return run_info.dataset_inputs(data_lib.load_splits(DataConfig(**c["data"])), c)

    first, again, changed = inputs(cfg), inputs(cfg), inputs(other)
    assert [(d.dataset.name, d.tags[0].value) for d in first] == [
        ("mini/train", "training"),
        ("mini/test", "eval"),
        ("mini/ood", "eval"),
    ]
    assert [d.dataset.digest for d in first] == [d.dataset.digest for d in again]  # a digest of the content
    assert all(a.dataset.digest != b.dataset.digest for a, b in zip(first, changed))
    source = json.loads(first[0].dataset.source)["tags"]
    assert source["generator"] == "prerl.data.splits.synthetic_splits:mini" and source["data.seed"] == "1234"
    assert json.loads(first[1].dataset.profile)["num_rows"] == cfg["data"]["test_problems"]


def test_a_run_that_ends_during_an_outage_fails_naming_what_is_not_recorded(tmp_path):
    tracker = Tracker.__new__(Tracker)  # the transport alone, as Tracker.start leaves it
    client = FlakyClient()
    tracker.cfg, tracker.uri, tracker.run_id, tracker.monitor = TrackingConfig(outage_wait_s=0), "http://h:1", "r", None
    tracker.logged_through, tracker.outbox = -1, Outbox(client, "r", tmp_path / "pending.jsonl")
    tracker.log({"train/loss": 1.0}, 1)
    client.down = True
    tracker.log({"train/loss": 2.0}, 2)
    tracker.log({"train/loss": 3.0}, 3)
    with pytest.raises(RuntimeError, match=r"not recorded there: metrics of steps 2\.\.3 \(2 steps\).*pending.jsonl"):
        tracker.finish("FINISHED")
    assert [json.loads(line)["kind"] for line in (tmp_path / "pending.jsonl").read_text().splitlines()] == [
        "metrics",
        "metrics",
        "status",
    ]


def test_jobs_racing_to_log_one_dataset_all_link_it(tmp_path):
    """MLflow's store looks a dataset up, then inserts it; a job that loses that race to a parallel job
    gets the unique-key error (seen with 6 processes on one SQLite store). It must retry and link the row
    the winner wrote, not end the run."""
    from mlflow.entities import Dataset, DatasetInput, InputTag

    uri = f"sqlite:///{tmp_path / 'race.db'}"
    winner, loser = (Tracker(TrackingConfig(uri=uri, experiment="race")) for _ in range(2))
    winner.start({"seed": 0}, {})
    loser.start({"seed": 1}, {})
    inputs = [
        DatasetInput(Dataset(name=f"set{i}", digest=f"d{i}", source_type="code", source="{}"), [InputTag("ctx", "e")])
        for i in range(3)
    ]
    real, calls = loser.client.log_inputs, []

    def lose_the_race_once(run_id, datasets):
        calls.append(run_id)
        if len(calls) == 1:  # the winner inserts between the loser's lookup and its insert
            winner.log_datasets(inputs)
            raise MlflowException("(sqlite3.IntegrityError) UNIQUE constraint failed: datasets.experiment_id")
        return real(run_id, datasets=datasets)

    loser.client.log_inputs = lose_the_race_once
    loser.log_datasets(inputs)
    assert calls == [loser.run_id, loser.run_id]
    for tracker in (winner, loser):
        logged = tracker.client.get_run(tracker.run_id).inputs.dataset_inputs
        assert sorted(d.dataset.name for d in logged) == ["set0", "set1", "set2"]

    def rejected(run_id, datasets):
        raise MlflowException("Invalid dataset", error_code="INVALID_PARAMETER_VALUE")

    loser.client.log_inputs = rejected
    with pytest.raises(MlflowException, match="Invalid dataset"):  # only the race is retried
        loser.log_datasets(inputs)


def test_ranks_other_than_0_log_through_every_tracker_method_without_a_store(tmp_path):
    calls = {
        "start": ({"seed": 0}, {}),
        "log_datasets": ([object()],),
        "log": ({"train/loss": 1.0}, 1),
        "log_dict": ({"a": 1}, "a.json"),
        "log_table": ({"a": [1]}, "t.json"),
        "log_policy": (tmp_path, 4),
        "queue": ({"kind": "metrics"},),
        "finish": ("FINISHED",),
    }
    public = {n for n, v in vars(Tracker).items() if callable(v) and not n.startswith("_")}
    assert public == set(calls)  # a new Tracker method must be tried here on a NullTracker too
    tracker = NullTracker()  # no uri, no client: any method that reached a store would fail
    for name, args in calls.items():
        assert getattr(tracker, name)(*args) is None
    assert tracker.run_id is None


def test_an_unreachable_server_at_start_up_fails_within_seconds_naming_it(monkeypatch):
    from mlflow_server import free_port

    for key in ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "MLFLOW_HTTP_REQUEST_TIMEOUT"):
        monkeypatch.delenv(key, raising=False)  # MLflow's defaults: 7 retries with backoff, minutes
    uri = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    start = time.monotonic()
    with pytest.raises(RuntimeError, match=f"MLflow tracking store {uri} is unreachable"):
        Tracker(TrackingConfig(uri=uri))
    # MLflow's own retries take over two minutes here; a refused connection answers at once
    assert time.monotonic() - start < 60


def test_system_metrics_are_logged_by_mlflow_when_asked(tmp_path):
    from mlflow.tracking import MlflowClient

    pytest.importorskip("psutil")
    cfg = TrackingConfig(
        uri=f"sqlite:///{tmp_path / 'm.db'}", experiment="sys", system_metrics=True, system_metrics_interval_s=0.5
    )
    tracker = Tracker(cfg)
    run_id = tracker.start({"output_dir": str(tmp_path)}, tags={})
    deadline = time.monotonic() + 60
    client = MlflowClient(cfg.uri)
    while "system/cpu_utilization_percentage" not in client.get_run(run_id).data.metrics:
        assert time.monotonic() < deadline, "no system metrics after 60 s"
        time.sleep(0.5)
    tracker.finish()
    metrics = client.get_run(run_id).data.metrics
    assert (
        0 <= metrics["system/cpu_utilization_percentage"] <= 100 and metrics["system/system_memory_usage_megabytes"] > 0
    )


def test_a_sweep_parent_records_the_best_job_and_an_optuna_summary(tmp_path):
    """The Hydra callback on its own: a parent opened from a multirun's config, two jobs nested under it
    (as train.py tags them), then the summary."""
    from mlflow.tracking import MlflowClient
    from omegaconf import OmegaConf

    from prerl.tracking.sweep_parent import SweepParentRun

    uri, sweep_dir = f"sqlite:///{tmp_path / 'm.db'}", tmp_path / "multirun"
    config = OmegaConf.create(
        {
            "tracking": {"uri": uri, "experiment": "sw", "tags": {}},
            "eval": {"sets": {"test": {}, "ood": {}}, "samples_per_prompt": 8},
            "hydra": {
                "sweep": {"dir": str(sweep_dir)},
                "overrides": {"task": ["optim.lr=interval(1e-6,1e-4)", "seed=0"]},
                "sweeper": {
                    "_target_": "hydra_plugins.prerl_optuna_sweeper.optuna_sweeper.OptunaSweeper",
                    "study_name": "lr",
                    "storage": "sqlite:///optuna.db",
                    "params": {},
                },
                "launcher": {"_target_": "hydra._internal.core_plugins.basic_launcher.BasicLauncher"},
            },
        }
    )
    callback = SweepParentRun()
    callback.on_multirun_start(config)
    written = json.loads((sweep_dir / run_info.PARENT_FILE).read_text())
    assert written["swept"] == ["optim.lr"]
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("sw").experiment_id
    for name, value in (("grpo-s0 optim.lr=1e-05", 0.25), ("grpo-s0 optim.lr=3e-05", 0.5)):
        job = client.create_run(experiment, run_name=name, tags={run_info.PARENT_TAG: written["run_id"]})
        client.log_metric(job.info.run_id, "eval/test/avg_at_8", value)
        client.set_terminated(job.info.run_id)
    (sweep_dir / "optimization_results.yaml").write_text(
        "best_value: 0.5\nbest_trial: 1\nbest_params: {optim.lr: 3e-05}\n"
    )
    callback.on_multirun_end(config)

    parent = client.get_run(written["run_id"])
    assert parent.info.status == "FINISHED" and parent.info.run_name == "optuna study lr: optim.lr=interval(1e-6,1e-4)"
    assert parent.data.params["swept.optim.lr"] == "interval(1e-6,1e-4)"
    assert parent.data.metrics["best/eval/test/avg_at_8"] == 0.5 and parent.data.metrics["sweep/jobs"] == 2
    assert parent.data.tags["best_run_name"] == "grpo-s0 optim.lr=3e-05" and parent.data.tags["optuna_study"] == "lr"
    assert parent.data.metrics["best/optuna_value"] == 0.5 and parent.data.tags["best_trial"] == "1"
    assert "optimization_results.yaml" in {a.path for a in client.list_artifacts(parent.info.run_id)}
