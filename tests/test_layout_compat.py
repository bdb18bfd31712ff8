"""What the flat layout wrote still works after the move to subpackages (prerl 0.2.0): a checkpoint
resumes, and every config keeps its ``config_hash``, so finished runs are still recognised and skipped.

The fixtures in tests/fixtures/layout_v1/ were written by the flat layout (commit 6383784): a checkpoint
of the smoke preset after one update, and the hash of each job of both studies and of the presets and
algorithm x objective pairs below. The old import paths fail with one line that names the new one.
"""

import io
import json
import pickletools
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from prerl.moved import MOVED
from prerl.tracking.completed import config_hash
from helpers import compose_config, to_run

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "layout_v1"
CHECKPOINT = FIXTURES / "smoke_step_000001.pt"


def pickled_globals(path: Path) -> set[str]:
    """The classes and functions a torch checkpoint's pickle names (each one is imported to load it)."""
    archive = zipfile.ZipFile(path)
    pickle = next(n for n in archive.namelist() if n.endswith("data.pkl"))
    ops = pickletools.genops(io.BytesIO(archive.read(pickle)))
    return {str(arg) for op, arg, _ in ops if op.name in ("GLOBAL", "STACK_GLOBAL") and arg}


def test_an_old_checkpoint_names_no_prerl_module():
    """So no move of a prerl module can break loading it."""
    named = pickled_globals(CHECKPOINT)
    assert named and not [n for n in named if n.split(".")[0].split(" ")[0] == "prerl"]


@pytest.mark.slow
def test_an_old_checkpoint_restores_into_the_new_trainer(tmp_path):
    from prerl.train.trainer import Experiment

    cfg, resolved = to_run(compose_config(["total_steps=2"], tmp_path, str(tmp_path / "cache")))
    experiment = Experiment(cfg, resolved)
    state = torch.load(CHECKPOINT, map_location="cpu", weights_only=False)
    assert experiment.load_state_dict(state) == 1
    restored = experiment.model.state_dict()
    assert state["model"].keys() == restored.keys()
    assert all(torch.equal(state["model"][k], restored[k]) for k in restored)
    assert experiment.prompts.state_dict()["pos"] == state["prompts"]["pos"]


@pytest.mark.slow
def test_every_config_keeps_its_hash():
    """295 configs: every job of the mini and smollm2 studies, the presets, algorithms and objectives."""
    from analysis.study.jobs import compose_config as compose_job

    recorded = json.loads((FIXTURES / "config_hashes.json").read_text())
    changed = {
        overrides: digest
        for overrides, digest in recorded.items()
        if config_hash(OmegaConf.to_container(compose_job(overrides.split(" ") if overrides else []), resolve=True))
        != digest
    }
    assert len(recorded) == 295 and changed == {}


@pytest.mark.parametrize("old", ["prerl.losses", "prerl.algorithms.cispo", "prerl.mini.base_model"])
def test_an_old_module_path_fails_with_one_line_naming_the_new_one(old):
    """A module of a moved package is refused at its package, the first name Python imports."""
    parts = old.split(".")
    first = next(name for name in (".".join(parts[:n]) for n in range(2, len(parts) + 1)) if name in MOVED)
    done = subprocess.run([sys.executable, "-c", f"import {old}"], capture_output=True, text=True)
    last = done.stderr.strip().splitlines()[-1]
    assert done.returncode == 1
    assert last == f"ModuleNotFoundError: {first} moved to {MOVED[first]} (prerl's subpackages)"


def test_an_old_name_of_a_package_that_was_a_module_names_its_new_module():
    with pytest.raises(ImportError, match=r"^prerl.config.TrainConfig moved to prerl.config.schema.TrainConfig"):
        from prerl.config import TrainConfig  # noqa: F401
    with pytest.raises(ImportError, match=r"^prerl.data.load_splits moved to prerl.data.splits.load_splits"):
        from prerl.data import load_splits  # noqa: F401
    from prerl.data import word_problems  # a submodule still imports

    assert word_problems.__name__ == "prerl.data.word_problems"


def test_a_plugin_listed_under_its_old_path_is_refused_in_one_line():
    from prerl.algo.registry import load_plugins

    with pytest.raises(ValueError, match=r"prerl.algorithms moved to prerl.algo.plugins") as err:
        load_plugins(["prerl.algorithms.cispo"])
    assert "\n" not in str(err.value)
