"""Solved dynamics: counts per method from logged prompt counts (or older fractions), averaged over runs."""

import pytest

from analysis import dynamics
from prerl.config.schema import TrackingConfig
from prerl.tracking.tracker import Tracker


def fake_run(uri, warmup, fractions, counts=True):
    """A run of 8 prompts per step; ``counts`` logs train/prompts/* (the trainer now), else the older
    train/groups/* fractions."""
    tracker = Tracker(TrackingConfig(uri=uri, experiment="dyn"))
    tracker.start(
        {
            "warmup_steps": warmup,
            "total_steps": len(fractions),
            "prompts_per_step": 8,
            "algorithm": {"name": "grpo"},
            "objective": {"name": "nsr_prerl"},
        },
        tags={},
    )
    for step, (solved, unsolved) in enumerate(fractions, start=1):
        if counts:
            tracker.log(
                {
                    "train/prompts/fully_solved": 8 * solved,
                    "train/prompts/fully_unsolved": 8 * unsolved,
                    "train/prompts/solved_at_least_once": 8 * (1 - unsolved),
                },
                step,
            )
        else:
            tracker.log(
                {
                    "train/groups/all_correct": solved,
                    "train/groups/all_wrong": unsolved,
                    "train/groups/mixed": 1 - solved - unsolved,
                },
                step,
            )
    tracker.finish()
    return tracker.run_id


def test_counts_labels_and_plot(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    fake_run(uri, 2, [(0.0, 0.5), (0.25, 0.5), (0.5, 0.25)])
    fake_run(uri, 2, [(0.25, 0.5), (0.25, 0.25), (0.5, 0.0)], counts=False)
    fake_run(uri, 0, [(0.125, 0.75), (0.125, 0.75), (0.25, 0.5)])
    methods = dynamics.main(["--experiment", "dyn", "--uri", uri, "--out", str(tmp_path / "d.png")])
    assert set(methods) == {"nsr_prerl(2)→grpo", "grpo"}
    dsrl = methods["nsr_prerl(2)→grpo"]
    assert len(dsrl["runs"]) == 2 and dsrl["warmup"] == 2
    assert dsrl["series"]["fully solved"] == pytest.approx({1: 1.0, 2: 2.0, 3: 4.0})  # mean of the two runs
    assert dsrl["series"]["solved at least once"][3] == pytest.approx(8 * (1 - 0.125))
    assert methods["grpo"]["series"]["fully unsolved"][1] == pytest.approx(6.0)
    assert (tmp_path / "d.png").stat().st_size > 10_000 and (tmp_path / "d.json").exists()
