"""The shipped mini and micro base models, their hash check, and building a recipe that is not shipped."""

import shutil
from dataclasses import replace

import pytest
from helpers import compose_config, to_run
from transformers import AutoModelForCausalLM

import prerl.models.mini_model as base_model
from prerl.config.schema import MiniModelConfig
from prerl.tracking.fingerprint import sha256_file

# A recipe that is not shipped and builds in seconds (5 pre-training steps on 200 documents).
TINY = replace(MiniModelConfig.micro(), name="tiny", corpus_documents=200, train_steps=5, batch_size=8)


@pytest.mark.parametrize("variant", list(base_model.VARIANTS))
def test_every_shipped_recipe_is_what_its_model_config_composes_and_loads_unbuilt(variant, tmp_path):
    recipe = base_model.VARIANTS[variant]()
    cfg, _ = to_run(compose_config([f"model={variant}"], tmp_path, str(tmp_path / "cache")))
    assert cfg.model.mini == recipe
    path = base_model.ensure_base_model(recipe, tmp_path)
    assert path.parent == base_model.SHIPPED and not any(tmp_path.iterdir())  # nothing was built
    info = base_model.read_build_info(path)
    assert info["config"] == recipe.__dict__ and info["build_version"] == base_model.BUILD_VERSION
    assert info["weights_sha256"] == sha256_file(path / base_model.WEIGHTS)
    assert info["built_on"]["cpu"] and info["packages"]["torch"]
    AutoModelForCausalLM.from_pretrained(path)


def test_a_damaged_shipped_build_is_refused(tmp_path, monkeypatch):
    shipped = base_model.build_dir(MiniModelConfig.micro(), base_model.SHIPPED)
    copy = tmp_path / "shipped" / shipped.name
    shutil.copytree(shipped, copy)
    weights = bytearray((copy / base_model.WEIGHTS).read_bytes())
    weights[-1] ^= 1  # one bit of the last weight
    (copy / base_model.WEIGHTS).write_bytes(bytes(weights))
    monkeypatch.setattr(base_model, "SHIPPED", tmp_path / "shipped")
    with pytest.raises(RuntimeError, match="damaged"):
        base_model.ensure_base_model(MiniModelConfig.micro(), tmp_path / "cache")


def test_another_recipe_is_built_cached_and_rebuilt_bit_for_bit_on_this_machine(tmp_path, monkeypatch):
    path = base_model.ensure_base_model(TINY, tmp_path / "cache", progress=False)
    assert path.parent == tmp_path / "cache"
    info = base_model.read_build_info(path)
    assert info["weights_sha256"] == sha256_file(path / base_model.WEIGHTS)
    built_at = (path / base_model.WEIGHTS).stat().st_mtime_ns
    assert base_model.ensure_base_model(TINY, tmp_path / "cache") == path
    assert (path / base_model.WEIGHTS).stat().st_mtime_ns == built_at  # reused, not rebuilt

    _, verdict = base_model.rebuild(TINY, tmp_path / "cache", progress=False)
    assert verdict.startswith("no shipped build")
    # Ship the first build, then rebuild: the same process and machine run the same kernels in the
    # same order, so this comparison is bit-exact (across machines it is not: docs/reproducibility.md).
    monkeypatch.setattr(base_model, "SHIPPED", tmp_path / "shipped")
    base_model.ship(path)
    rebuilt, verdict = base_model.rebuild(TINY, tmp_path / "cache", progress=False)
    assert verdict.startswith("matches the shipped build"), verdict
    assert base_model.ensure_base_model(TINY, tmp_path / "elsewhere") == tmp_path / "shipped" / path.name
