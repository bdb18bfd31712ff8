"""The flat layout's module names, and where each module lives now (the subpackages of prerl 0.2.0).

A module that moved is not importable under its old name: importing it raises one line that names the
new path, so a plug-in or a script written against the flat layout fails at its import, not later. Of
the old modules, four names are packages now (``prerl.config``, ``prerl.data``, ``prerl.models``, ``prerl.tracking``):
their ``__getattr__`` (``attribute_moved``) answers an old ``from prerl.config import TrainConfig`` the
same way, and prerl's own (``moved_submodule``) answers ``from prerl import config_docs``.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import types
from typing import Any, Callable

MOVED = {
    "prerl.advantages": "prerl.algo.advantages",
    "prerl.algorithms": "prerl.algo.plugins",
    "prerl.behaviours": "prerl.eval.behaviours",
    "prerl.benchmarks": "prerl.data.eval_sets",
    "prerl.cache": "prerl.models.build_cache",
    "prerl.checkpoint": "prerl.train.checkpoint",
    "prerl.choices": "prerl.launch.choices",
    "prerl.cli": "prerl.launch.cli",
    "prerl.completed": "prerl.tracking.completed",
    "prerl.config_docs": "prerl.config.docs",
    "prerl.cost": "prerl.tracking.cost",
    "prerl.critic": "prerl.train.critic",
    "prerl.distributed": "prerl.parallel.distributed",
    "prerl.enums": "prerl.config.enums",
    "prerl.eval_runner": "prerl.eval.policy_evaluation",
    "prerl.evaluation": "prerl.eval.evaluator",
    "prerl.fingerprint": "prerl.tracking.fingerprint",
    "prerl.fsdp": "prerl.parallel.fsdp",
    "prerl.gguf_weights": "prerl.models.gguf_weights",
    "prerl.gpu_check": "prerl.commands.gpu_check",
    "prerl.logprobs": "prerl.train.logprobs",
    "prerl.losses": "prerl.algo.losses",
    "prerl.mini.base_model": "prerl.models.mini_model",
    "prerl.mini.styles": "prerl.data.mini_styles",
    "prerl.mini.task": "prerl.data.mini_task",
    "prerl.mini.tokenizer": "prerl.models.mini_tokenizer",
    "prerl.normaliser": "prerl.algo.normaliser",
    "prerl.objectives": "prerl.algo.objectives",
    "prerl.policy_model": "prerl.tracking.policy_model",
    "prerl.registry": "prerl.algo.registry",
    "prerl.rewards": "prerl.scoring.rewards",
    "prerl.rms_norm": "prerl.models.rms_norm",
    "prerl.rollout_correction": "prerl.algo.rollout_correction",
    "prerl.run_info": "prerl.tracking.run_info",
    "prerl.sandbox": "prerl.scoring.sandbox",
    "prerl.scorers": "prerl.scoring",
    "prerl.stats": "prerl.eval.stats",
    "prerl.sweep_tracking": "prerl.tracking.sweep_parent",
    "prerl.tasks.calibrate": "prerl.commands.calibrate",
    "prerl.tasks.word_problems": "prerl.data.word_problems",
    "prerl.trainer": "prerl.train.trainer",
    "prerl.update": "prerl.train.update",
    "prerl.mini": "prerl.models.mini_model (the mini models) and prerl.data.mini_task (their task)",
    "prerl.tasks": "prerl.data.word_problems (the task) and prerl.commands.calibrate (its calibration)",
}


class MovedModuleFinder(importlib.abc.MetaPathFinder):
    """Refuses the old name of a moved module, naming its new one."""

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> None:
        if fullname in MOVED:
            raise ModuleNotFoundError(f"{fullname} moved to {MOVED[fullname]} (prerl's subpackages)", name=fullname)
        return None


def install() -> None:
    if not any(isinstance(finder, MovedModuleFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, MovedModuleFinder())


def is_own_name(module: str, name: str) -> bool:
    """Whether ``module`` defines ``name`` itself (not a name it imported, nor a private one)."""
    value = vars(importlib.import_module(module)).get(name)
    if name.startswith("_") or value is None or isinstance(value, types.ModuleType):
        return False
    return getattr(value, "__module__", module) == module or name.isupper()


def attribute_moved(package: str, module: str) -> Callable[[str], Any]:
    """A package's ``__getattr__`` for the names its flat-layout module of the same name defined."""

    def __getattr__(name: str) -> Any:
        if is_own_name(module, name) and importlib.util.find_spec(f"{package}.{name}") is None:
            raise ImportError(f"{package}.{name} moved to {module}.{name} (prerl's subpackages)")
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__


def moved_submodule(name: str) -> Any:
    """prerl's own ``__getattr__``: ``from prerl import config_docs`` names the module's new path.

    The finder alone cannot answer that form: the import system takes its ModuleNotFoundError for a
    missing attribute and says only "cannot import name"; an ImportError raised here reaches the caller.
    """
    if f"prerl.{name}" in MOVED:
        raise ImportError(f"prerl.{name} moved to {MOVED[f'prerl.{name}']} (prerl's subpackages)")
    raise AttributeError(f"module 'prerl' has no attribute {name!r}")
