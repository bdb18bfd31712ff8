"""A study's training jobs before anything runs: each part's jobs as Hydra's basic sweeper will expand
them, and each job's ``config_hash`` (``prerl/tracking/completed.py``), so that the run count, what a relaunch
skips and what it still has to train are known before launching.

A job is the list of overrides one ``train.py`` run gets, as Hydra's basic sweeper forms it: the sweep
file's ``hydra.sweeper.params`` are swept; a command-line sweep (``key=a,b``) replaces the file's list of
that key; a single value applies to every job.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Optional

from hydra import compose, initialize_config_dir
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper  # the expansion multiruns use (hydra 1.3)
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, OmegaConf

from prerl.config.schema import register_configs
from prerl.tracking.completed import config_hash

from .spec import ROOT, Part, Preset, StudySpec, seeds_override

CONF = str(ROOT / "conf")


@dataclass(frozen=True)
class Job:
    part: str  # the part's key
    overrides: tuple[str, ...]
    config_hash: str


def compose_config(overrides: list[str], hydra: bool = False) -> DictConfig:
    """``train.py``'s config for these overrides (``hydra``: with the ``hydra`` node, for a sweep's params)."""
    register_configs()
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        return compose(config_name="config", overrides=[*overrides, "output_dir=x"], return_hydra_config=hydra)


def sweep_choice(study: StudySpec, part: Part) -> str:
    return f"+sweep/{study.sweep_dir}={part.sweep}"


def part_arguments(
    study: StudySpec, preset: Preset, part: Part, extra: tuple[str, ...] = (), seed: Optional[int] = None
) -> list[str]:
    """What ``train.py -m`` gets for one part: the sweep, the preset's overrides, the part's, its seeds (or
    the one ``seed``), the preset's MLflow experiment and the caller's ``extra`` overrides (``cache_dir=...``)."""
    return [
        sweep_choice(study, part),
        *preset.overrides,
        *preset.part_overrides.get(part.sweep, ()),
        seeds_override(preset.seeds[part.key]) if seed is None else f"seed={seed}",
        f"tracking.experiment={study.experiment_of(preset.name)}",
        *extra,
    ]


def expand(arguments: list[str]) -> list[list[str]]:
    """The jobs of one multirun with these command-line ``arguments`` (the first selects the sweep file):
    the sweep file's params, then the arguments, expanded by Hydra's basic sweeper itself."""
    parser = OverridesParser.create()
    given = parser.parse_overrides(arguments)
    fixed = [a for a, o in zip(arguments, given) if not o.is_sweep_override()]
    params = compose_config(fixed, hydra=True).hydra.sweeper.params or {}
    overrides = parser.parse_overrides([*(f"{k}={v}" for k, v in params.items()), *arguments])
    return BasicSweeper.split_arguments(overrides, None)[0]


@lru_cache(maxsize=None)
def job_hash(overrides: tuple[str, ...]) -> str:
    """The job's ``config_hash``, after the validation ``train.py`` does (a bad job fails here, early)."""
    cfg = compose_config(list(overrides))
    OmegaConf.to_object(cfg)
    return config_hash(OmegaConf.to_container(cfg, resolve=True))


def study_jobs(study: StudySpec, preset: Preset, extra: tuple[str, ...] = ()) -> list[Job]:
    """Every job of every part, in launch order (a cell two parts share appears twice, one hash)."""
    return [
        Job(part.key, tuple(job), job_hash(tuple(job)))
        for part in study.sweep_parts()
        for job in expand(part_arguments(study, preset, part, extra))
    ]


def distinct(jobs: list[Job]) -> list[Job]:
    """The first job of each config hash: the runs the study trains."""
    seen: dict[str, Job] = {}
    for job in jobs:
        seen.setdefault(job.config_hash, job)
    return list(seen.values())
