"""What the flat layout wrote still works after the move to subpackages (prerl 0.2.0): a checkpoint
resumes, and every config keeps its ``config_hash``, so finished runs are still recognised and skipped.

The fixtures in tests/fixtures/layout_v1/ were written by the flat layout (commit 6383784): a checkpoint
of the smoke preset after one update, and the hash of each job of both studies and of the presets and
algorithm x objective pairs below.
"""

import json
from pathlib import Path

import torch
from helpers import compose_config, to_run
from omegaconf import OmegaConf

from prerl.tracking.completed import config_hash

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "layout_v1"

CHECKPOINT = FIXTURES / "smoke_step_000001.pt"


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
