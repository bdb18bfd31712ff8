"""The six-way multirun of docs/algorithms-and-objectives.md: ``python train.py -m`` over the baselines
completes and every job is logged."""

import sys

from helpers import sweep_jobs


def test_six_way_multirun(tmp_path, cache_dir):
    """The sweep over the baselines of docs/algorithms-and-objectives.md, through Hydra's multirun, with the real grader."""
    db = tmp_path / "sweep.db"
    cmd = [
        sys.executable,
        "train.py",
        "-m",
        "algorithm=grpo,ppo,rloo,reinforce_pp,dr_grpo,dapo",
        "warmup_steps=0",
        "experiment=smoke",
        f"cache_dir={cache_dir}",
        f"tracking.uri=sqlite:///{db}",
        f"hydra.sweep.dir={tmp_path / 'multirun'}",
    ]
    runs = sweep_jobs(cmd, f"sqlite:///{db}")
    assert sorted(r.data.params["algorithm.name"] for r in runs) == sorted(
        ["grpo", "ppo", "rloo", "reinforce_pp", "dr_grpo", "dapo"]
    )
    assert all(r.info.status == "FINISHED" for r in runs)
