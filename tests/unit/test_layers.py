"""The layers of prerl: each subpackage imports only from the packages below it (prerl/__init__.py lists
them). Read from the sources, deferred imports (inside functions) included: a function-level import
still ties a lower layer to a higher one."""

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))
from import_graph import graph  # noqa: E402

# Bottom first. ``prerl`` itself and ``prerl.moved`` (the old names) sit under every layer.
LAYERS = (
    "config",
    "algo",
    "scoring",
    "data",
    "tracking",
    "models",
    "parallel",
    "rollout",
    "launch",
    "eval",
    "train",
    "plan",
    "commands",
)
BASE = {"prerl", "prerl.moved"}


def layer_of(module: str) -> int:
    if module in BASE:
        return -1
    package = module.split(".")[1]
    assert package in LAYERS, f"{module} is in no layer: add its package to LAYERS (and to prerl/__init__.py)"
    return LAYERS.index(package)


def upward_imports(edges: dict[str, dict[str, bool]]) -> list[str]:
    return sorted(
        f"{module} ({LAYERS[layer_of(module)]}) imports {target} ({LAYERS[layer_of(target)]})"
        for module, targets in edges.items()
        for target in targets
        if layer_of(target) > layer_of(module)
    )


def test_every_module_belongs_to_a_layer():
    modules, _, _ = graph()
    for module in modules:
        layer_of(module)


def test_no_layer_imports_a_layer_above_it():
    _, edges, _ = graph()
    assert upward_imports(edges) == []


def test_the_rule_catches_an_upward_import():
    """The check itself: a config module that imported the trainer would be reported."""
    edges = {"prerl.config.schema": {"prerl.train.trainer": False}, "prerl.train.trainer": {}}
    assert upward_imports(edges) == ["prerl.config.schema (config) imports prerl.train.trainer (train)"]
    with pytest.raises(AssertionError, match="in no layer"):
        layer_of("prerl.newpackage.module")
