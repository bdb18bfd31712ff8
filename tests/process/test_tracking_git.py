"""The source tags a run records: the checkout's commit and its dirty flag, as ``git`` reports them
(prerl/tracking/run_info.py)."""

import subprocess

from prerl.tracking import run_info


def test_source_tags_are_the_checkout_commit_and_its_dirty_flag():
    tags = run_info.source_tags()
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=run_info.ROOT, capture_output=True, text=True
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"], cwd=run_info.ROOT, capture_output=True, text=True
    ).stdout.strip()
    assert tags["mlflow.source.git.commit"] == head
    assert tags["git_dirty"] == str(bool(dirty)).lower()
    assert tags["mlflow.source.name"] == "train.py" and tags["mlflow.source.type"] == "LOCAL"
