"""The real-model study's commands (``python -m analysis.study``): one end-to-end run of the smoke preset,
relaunched to show the finished-run skip, on the same store and on a fresh one that has only the exported
files; the restore command fills an empty store once."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from analysis.study import export, jobs
from analysis.study.smollm2 import PRESETS, STUDY

ROOT = Path(__file__).resolve().parents[2]

FIXTURE = ROOT / "tests" / "fixtures" / "study"


def study_cli(args: list[str], cwd: Path) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "analysis.study", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=1200,
        env={**os.environ, "PYTHONPATH": str(ROOT), "MLFLOW_DISABLE_TELEMETRY": "true", "HF_HUB_OFFLINE": "1"},
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout + done.stderr


def smoke_arguments(uri: str, cache_dir: str, results: Path) -> list[str]:
    return [
        "--study",
        "smollm2",
        "--preset",
        "smoke",
        "--uri",
        uri,
        "--cache-dir",
        cache_dir,
        "--results",
        str(results),
    ]


@pytest.fixture(scope="module")
def smoke_study(tmp_path_factory, cache_dir):
    """One launch of the smoke preset into store A (``mlflow.db`` of its folder), and a copy of its results
    folder as a clone would have it once they are committed."""
    tmp = tmp_path_factory.mktemp("smoke")
    results, uri = tmp / "results", f"sqlite:///{tmp / 'mlflow.db'}"
    first = study_cli(["run", *smoke_arguments(uri, cache_dir, results)], tmp)
    shutil.copytree(results, tmp / "committed")
    runs = len(jobs.distinct(jobs.study_jobs(STUDY, PRESETS["smoke"])))
    return {"tmp": tmp, "results": results, "uri": uri, "first": first, "committed": tmp / "committed", "runs": runs}


def test_smoke_preset_runs_exports_writes_the_document_and_a_relaunch_skips(smoke_study, cache_dir):
    tmp, results, runs, first = smoke_study["tmp"], smoke_study["results"], smoke_study["runs"], smoke_study["first"]
    common = smoke_arguments(smoke_study["uri"], cache_dir, results)
    assert f"{runs} distinct runs" in first and f"this launch finished {runs} run(s) and skipped 0" in first
    assert len(list((results / "runs").glob("*.json"))) == runs
    assert (results / "alignment" / "alignment.json").exists() and (results / "diagnostics" / "nsr_prerl.json").exists()
    again = study_cli(["run", *common], tmp)
    assert f"{runs} already finished (0 of them restored from the exported files), 0 to run" in again
    assert f"this launch finished 0 run(s) and skipped {runs}" in again
    assert [x["finished"] for x in json.loads((results / "launches.json").read_text())] == [runs, 0]
    # the document again from the files alone, the store gone
    (tmp / "mlflow.db").unlink()
    study_cli(
        ["doc", "--study", "smollm2", "--preset", "smoke", "--results", str(results), "--out", str(tmp / "d.md")],
        tmp,
    )
    text = (tmp / "d.md").read_text()
    assert "A preview, not a result" in text and "| 7.1-dsrl-beats-grpo |" in text


def test_the_restore_command_fills_an_empty_store_once(tmp_path):
    arguments = ["restore", "--study", "smollm2", "--results", str(FIXTURE / "smollm2"), "--uri"]
    arguments.append(f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert "restored 16 finished run(s)" in study_cli(arguments, tmp_path)
    assert "restored 0 finished run(s)" in study_cli(arguments, tmp_path)
    with pytest.raises(AssertionError, match="a run of experiment 'smollm2-study', not 'smollm2-study-quick'"):
        study_cli([*arguments, "--preset", "quick"], tmp_path)


def launch_independent(doc: Path, folder: Path) -> str:
    """The document without what differs between two launches on the same files: the launch table's rows,
    the launches' summed wall time, and the path of the results folder it was written in."""
    text = doc.read_text().replace(os.path.relpath(folder, ROOT), "<results>")
    text = re.sub(r"the launches below .*? in all", "the launches below (...) in all", text)
    return "\n".join(line for line in text.splitlines() if not re.match(r"\| \d+ \| \d{4}-\d\d-\d\d ", line))


def test_a_relaunch_on_a_fresh_machine_restores_the_exported_runs_and_trains_nothing(smoke_study, cache_dir, tmp_path):
    """A clean clone: the results folder as committed after the first launch, a new working folder and an
    empty store B (store A is never named)."""
    from mlflow.tracking import MlflowClient

    runs, results, uri = smoke_study["runs"], tmp_path / "results", f"sqlite:///{tmp_path / 'mlflow.db'}"
    shutil.copytree(smoke_study["committed"], results)
    plan = study_cli(["plan", *smoke_arguments(uri, cache_dir, results)], tmp_path)  # restores nothing
    assert f"{runs} already finished ({runs} of them to be restored from the exported files), 0 to run" in plan
    out = study_cli(["run", *smoke_arguments(uri, cache_dir, results)], tmp_path)
    last = json.loads((results / "launches.json").read_text())[-1]
    assert (last["finished"], last["skipped"], last["missing"]) == (0, runs, 0), out[-3000:]
    assert last["restored"] == runs
    assert f"{runs} already finished ({runs} of them restored from the exported files), 0 to run" in out
    assert len(list((results / "runs").glob("*.json"))) == runs  # each part's export wrote no second file
    client = MlflowClient(uri)
    stored = client.search_runs([client.get_experiment_by_name(STUDY.experiment_of("smoke")).experiment_id])
    trained = [r for r in stored if "config_hash" in r.data.tags]  # (a multirun's parent run has none)
    assert len(trained) == runs and all(export.ORIGINAL_RUN_ID in r.data.tags for r in trained)  # all restored
    name = Path(STUDY.doc).name  # the first launch wrote it in its own results folder
    first = launch_independent(smoke_study["committed"] / name, smoke_study["results"])
    assert launch_independent(results / name, results) == first and first.count("<results>") >= 3
