"""``python train.py --help`` shows the documented options of each config group (prerl/config/docs.py)."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_train_py_help_shows_documented_options_per_group():
    done = subprocess.run(
        [sys.executable, "train.py", "--help", "model=micro"], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    for section in ("== run:", "== model:", "== rollout:", "== algorithm:", "== eval:"):
        assert section in out
    assert "options (algorithm=...): cispo, dapo" in out
    temperature = next(line for line in out.splitlines() if line.strip().startswith("rollout.temperature "))
    assert "(float, 1.0)" in temperature and "sampling temperature, > 0" in temperature
    assert "(str, micro)" in next(line for line in out.splitlines() if line.strip().startswith("model.mini.name "))
    # ${...} values are shown as written (Hydra's template would otherwise choke on the $)
    assert "${hydra:runtime.output_dir}" in out

    only = subprocess.run(
        [sys.executable, "train.py", "--help", "+help=rollout"], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert only.returncode == 0, only.stderr
    assert "== rollout:" in only.stdout and "== model:" not in only.stdout
