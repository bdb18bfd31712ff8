"""The real-model study's fixture of exported runs (tests/fixtures/study/) restored into a fresh MLflow store:
the finished-run skip finds every restored run, and each exports back to its file, never twice."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from analysis.study import export, restore
from analysis.study.smollm2 import STUDY
from prerl.config.schema import TrackingConfig
from prerl.tracking.completed import final_eval, finished_run

ROOT = Path(__file__).resolve().parents[2]

FIXTURE = ROOT / "tests" / "fixtures" / "study"


@pytest.fixture(scope="module")
def restored(tmp_path_factory):
    """The fixture's run files (copied) restored into a fresh SQLite store: the client, its URI, the
    folder and how many runs were restored."""
    from mlflow.tracking import MlflowClient

    tmp = tmp_path_factory.mktemp("restore")
    folder = tmp / "runs"
    shutil.copytree(FIXTURE / "smollm2" / "runs", folder)
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(tmp)  # the experiment's artifacts go to ./mlruns where it is created
        client = MlflowClient(uri)
        count = restore.restore_runs(client, STUDY.experiment, folder)
    return client, uri, folder, count


def last_values(doc: dict, prefix: str = "eval/") -> dict[str, float]:
    """Each metric's value at its last step, as the file holds it."""
    return {k: max(pairs)[1] for k, pairs in doc["metrics"].items() if k.startswith(prefix)}


def test_the_finished_run_skip_finds_every_restored_run(restored):
    client, uri, folder, count = restored
    files = sorted(folder.glob("*.json"))
    assert count == len(files) == 16
    tracking = TrackingConfig(uri=uri, experiment=STUDY.experiment)
    for path in files:
        doc = export.read(path)
        run = finished_run(tracking, doc["config_hash"])  # what train.py asks before training a job
        assert run is not None, path.name
        assert final_eval(run) == last_values(doc) and final_eval(run)
        assert (run.info.start_time, run.info.end_time) == (doc["start_time"], doc["end_time"])
        assert run.data.tags[export.ORIGINAL_RUN_ID] == doc["run_id"] != run.info.run_id
        assert run.data.tags[export.RESTORED_FROM].endswith(f"runs/{path.name}")
        assert run.data.params == doc["params"] and run.data.tags["sweep"] == STUDY.sweep_dir
    assert restore.restore_runs(client, STUDY.experiment, folder) == 0  # a second restore adds nothing
    assert len(client.search_runs([client.get_experiment_by_name(STUDY.experiment).experiment_id])) == count


def test_a_restored_run_exports_back_to_its_file_and_never_twice(restored, tmp_path):
    client, _, folder, count = restored
    kept = export.export_runs(client, STUDY.experiment, STUDY.sweep_dir, folder)
    assert kept == {"written": 0, "kept": count} and len(list(folder.glob("*.json"))) == count
    again = tmp_path / "again"
    assert export.export_runs(client, STUDY.experiment, STUDY.sweep_dir, again)["written"] == count
    assert sorted(p.name for p in again.glob("*.json")) == sorted(p.name for p in folder.glob("*.json"))
    for path in again.glob("*.json"):
        original, back = export.read(folder / path.name), export.read(path)
        # what may differ: the restore's two tags, and MLflow's own run-name tag (every MLflow run has one;
        # the hand-written fixture files do not)
        assert back["tags"].pop(export.RESTORED_FROM).endswith(path.name)
        assert back["tags"].pop(export.ORIGINAL_RUN_ID) == original["run_id"]
        assert back["tags"].pop("mlflow.runName") == original["tags"].pop("mlflow.runName", original["run_name"])
        assert back == original
