"""The config documents itself: every field has help, and docs/configuration.md shows it, every leaf key
once (prerl/config/docs.py; ``python train.py --help``: tests/process/test_config_docs_help.py)."""

import dataclasses
import typing
from pathlib import Path

import pytest

from prerl.config import docs as config_docs
from prerl.config import schema as config

ROOT = Path(__file__).resolve().parents[2]


def _schema_classes():
    seen, todo = [], [config.TrainConfig]
    while todo:
        cls = todo.pop()
        if cls in seen:
            continue
        seen.append(cls)
        for tp in typing.get_type_hints(cls).values():
            todo += [t for t in (tp, *typing.get_args(tp)) if dataclasses.is_dataclass(t)]
    return seen


def test_every_field_of_every_config_dataclass_has_help():
    classes = _schema_classes()
    assert config.EvalSetConfig not in classes  # reached through eval.sets' values, so listed by hand
    missing = [
        f"{cls.__name__}.{f.name}"
        for cls in classes + [config.EvalSetConfig]
        for f in dataclasses.fields(cls)
        if not f.metadata.get("help", "").strip()
    ]
    assert missing == []
    assert len(classes) >= 15


def test_the_reference_lists_every_leaf_key_once():
    keys = [o.key for o in config_docs.options()]
    assert len(keys) == len(set(keys))
    for key in (
        "warmup_steps",
        "rollout.temperature",
        "rollout.vllm.max_model_len",
        "algorithm.kl.coef",
        "model.mini.max_positions",
        "data.max_prompt_tokens",
        "eval.sets",
    ):
        assert key in keys
    text = config_docs.help_text()
    assert all(f"  {k} " in text for k in keys)


def test_docs_reference_is_what_the_generator_writes():
    page = (ROOT / "docs" / "configuration.md").read_text()
    generated = config_docs.replace_block(page, config_docs.markdown(config_docs.composed_defaults()))
    assert generated == page, "docs/configuration.md's config reference is stale: python -m prerl.config.docs --write"


def test_a_composition_shows_its_own_values():
    from hydra import compose, initialize_config_dir

    config.register_configs()
    with initialize_config_dir(config_dir=str(config_docs.CONF), version_base="1.3"):
        cfg = compose("config", overrides=["model=qwen3_4b", "rollout.temperature=0.7"])
    lines = {line.split()[0]: line for line in config_docs.help_text(cfg, only="model").splitlines()[1:] if line}
    assert "(str | null, Qwen/Qwen3-4B)" in lines["model.path"]
    assert "(str | null, bfloat16)" in lines["model.autocast"]
    assert "rollout.temperature" not in lines  # one section only
    assert "(float, 0.7)" in config_docs.help_text(cfg, only="rollout")


def test_a_section_that_does_not_exist_is_named():
    with pytest.raises(ValueError, match="no config section 'nope'; sections: run, model"):
        config_docs.help_text(only="nope")
