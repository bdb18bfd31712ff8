"""The whole GPU check (prerl/commands/gpu_check.py) run degraded on the CPU: it passes, fails when a phase
exceeds its plan, and leaves nothing in the working directory. On a GPU it runs as ``make gpu-check`` or
from the kit (``make gpu-kit``; docs/scaling-out.md#gpu-check)."""

from __future__ import annotations

from prerl.commands import gpu_check


def test_the_degraded_check_runs_and_fails_when_a_phase_exceeds_its_plan(monkeypatch, capsys):
    """Every phase is measured (torch's profiler on a CPU) and printed beside the plan; with a plan of one
    byte per phase the same run exits 1."""
    assert gpu_check.main(["--cpu"]) == 0
    out = capsys.readouterr().out
    assert "policy: Qwen3 'micro'" in out and "built on cpu" in out and "rollout tokens/s" in out
    for phase in ("| rollout |", "| update |", "| evaluation |"):
        assert phase in out
    assert "every phase within its memory plan" in out
    monkeypatch.setattr(gpu_check, "planned_increment", lambda plan, *names: 1)
    assert gpu_check.main(["--cpu"]) == 1
    assert "EXCEEDS THE PLAN" in capsys.readouterr().out


def test_the_check_leaves_nothing_in_the_working_directory(tmp_path, monkeypatch):
    """Its MLflow store and the runs' artifacts live in the check's temporary folder: a SQLite store's
    experiment would otherwise keep its artifacts in ./mlruns (MLflow's default artifact root)."""
    monkeypatch.chdir(tmp_path)
    assert gpu_check.main(["--cpu"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == []
