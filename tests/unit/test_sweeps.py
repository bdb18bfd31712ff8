"""Sweeps, launchers and the Optuna sweeper compose, each job tagged; config hashes stay put; a multirun is
tabled by the keys it varied (jobs really run: tests/process/test_sweeps_multirun.py)."""

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from prerl.config.schema import register_configs

ROOT = Path(__file__).resolve().parents[2]

SWEEPS = sorted(p.stem for p in (ROOT / "sweeps").glob("*.yaml"))


def compose_hydra(overrides, hydra=True):
    register_configs()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose(config_name="config", overrides=overrides, return_hydra_config=hydra)


@pytest.mark.parametrize("sweep", SWEEPS)
def test_every_sweep_job_composes_and_is_tagged(sweep):
    params = compose_hydra([f"+sweep={sweep}"]).hydra.sweeper.params
    assert params, f"sweeps/{sweep}.yaml sweeps nothing"
    jobs = [[]]
    for key, values in params.items():  # every value of every swept key (one at a time)
        jobs += [[f"{key}={v}"] for v in str(values).split(",")]
    for job in jobs:
        run = OmegaConf.to_object(compose_hydra([f"+sweep={sweep}", "output_dir=x", *job], hydra=False))  # validates
        assert run.tracking.tags["sweep"] == sweep


def test_sweep_methods_set_what_they_say():
    dsrl = compose_hydra(["+sweep=baselines", "+sweep/method=dsrl"])
    dapo = compose_hydra(["+sweep=baselines", "+sweep/method=dapo", "experiment=paper_qwen3_4b"])
    control = compose_hydra(["+sweep=warmup_kind", "+sweep/method=nsr_rl_warmup"])
    objectives = compose_hydra(["+sweep=objectives", "objective=psr_rl", "total_steps=7"])
    assert (dsrl.algorithm.name, dsrl.objective.name, dsrl.warmup_steps) == ("grpo", "nsr_prerl", 20)
    assert (dapo.algorithm.name, dapo.warmup_steps, dapo.total_steps) == ("dapo", 0, 348)  # beats the preset's 19
    assert (control.objective.name, control.warmup_steps) == ("nsr_rl", 20)
    assert objectives.warmup_steps == objectives.total_steps == 7  # the objective alone, all run long


@pytest.mark.parametrize(
    "launcher, target",
    [
        ("joblib", "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher"),
        ("submitit_local", "hydra_plugins.hydra_submitit_launcher.submitit_launcher.LocalLauncher"),
        ("submitit_slurm", "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"),
    ],
)
def test_launchers_compose(launcher, target):
    cfg = compose_hydra([f"hydra/launcher={launcher}", "+sweep=warmup"])
    assert cfg.hydra.launcher._target_ == target


def test_optuna_sweeper_composes():
    cfg = compose_hydra(["hydra/sweeper=optuna", "hydra.sweeper.storage=sqlite:///x.db"])
    assert cfg.hydra.sweeper._target_.endswith("prerl_optuna_sweeper.optuna_sweeper.OptunaSweeper")
    assert cfg.hydra.sweeper.n_trials > 0 and cfg.hydra.sweeper.direction == "maximize"


@pytest.mark.parametrize(
    "overrides, digest",
    [
        ([], "0799e41e8e0a5dcc"),
        (["algorithm=ppo", "objective=psr_prerl", "warmup_steps=1"], "05fb8a412e5435d4"),
    ],
)
def test_config_hash_of_existing_runs_is_unchanged(overrides, digest, tmp_path):
    """Digests of configs logged by earlier versions (computed with those versions, commit 65f83f6):
    a knob added since, at the value that reproduces those runs, leaves them as they were."""
    from helpers import compose_config
    from omegaconf import OmegaConf

    from prerl.tracking.completed import config_hash

    cfg = compose_config(overrides, tmp_path, str(tmp_path / "cache"))
    assert config_hash(OmegaConf.to_container(cfg, resolve=True)) == digest


def test_config_hash_ignores_how_ranks_hold_the_model():
    """Replicated and sharded runs compute the same steps; runs from before the key keep their digest."""
    from prerl.tracking.completed import config_hash

    assert config_hash({"seed": 0, "distributed": {"strategy": "fsdp2"}}) == config_hash({"seed": 0})
    assert config_hash({"seed": 1}) != config_hash({"seed": 0})


def test_a_multirun_is_tabled_by_the_keys_it_varied():
    from analysis.tables import multirun_spec

    assert multirun_spec(["warmup_steps"]).name == "warmup"
    assert multirun_spec(["algorithm.advantage", "algorithm.name"]).name == "main"
    generic = multirun_spec(["objective.name", "objective.samples", "objective.space", "optim.lr"])
    assert generic.row_header == "objective.name, optim.lr"  # a changed group shows by its name
    params = [
        {"objective.name": "psr_prerl", "optim.lr": "1e-05"},
        {"objective.name": "nsr_prerl", "optim.lr": "2e-06"},
    ]
    assert [generic.label(p) for p in sorted(params, key=generic.order)] == [
        "objective.name=nsr_prerl, optim.lr=2e-06",
        "objective.name=psr_prerl, optim.lr=1e-05",
    ]
