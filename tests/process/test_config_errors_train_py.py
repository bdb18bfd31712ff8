"""``python train.py`` run for real on bad input (prerl/launch/cli.py): the exit status, the single line
on stderr, and no traceback unless HYDRA_FULL_ERROR=1 (the messages themselves, composed in-process:
tests/unit/test_config_errors.py)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from prerl.launch.cli import EXIT_BAD_CONFIG

ROOT = Path(__file__).resolve().parents[2]


def _train(*args, **env):
    return subprocess.run(
        [sys.executable, "train.py", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=300,
    )


@pytest.mark.parametrize(
    "args,named",
    [
        (["warmup_steps=-1"], "warmup_steps=-1"),
        (["rollout.temperature=0"], "rollout.temperature=0"),
        (["model.path=/nonexistent"], "model.path='/nonexistent'"),
        (["rollout.max_new_tokens=100000"], "rollout.max_new_tokens=100000"),
        (["rollout.tempx=1"], "rollout.tempx"),
    ],
)
def test_train_py_answers_bad_input_in_one_line_without_a_traceback(args, named, tmp_path):
    done = _train(*args, f"hydra.run.dir={tmp_path}")
    assert done.returncode == EXIT_BAD_CONFIG
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("config error: ") and named in lines[0], done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""


def test_hydra_full_error_still_shows_the_traceback(tmp_path):
    done = _train("warmup_steps=-1", f"hydra.run.dir={tmp_path}", HYDRA_FULL_ERROR="1")
    assert done.returncode != 0
    assert "Traceback" in done.stderr and "warmup_steps=-1 must be between 0 and total_steps=60" in done.stderr
