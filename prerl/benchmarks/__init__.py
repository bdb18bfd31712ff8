"""MATH train and the paper's ten benchmarks: loaders, prompts and record shape (see ``loading``).

The names (``BENCHMARKS``) import nothing heavy, so that the config check can read them before torch
and ``datasets`` load; the loaders (``loading``, which imports ``datasets``) load on first use.
"""

from typing import TYPE_CHECKING, Any

from prerl.benchmarks.registry import BENCHMARKS, MATH6, OOD
from prerl.benchmarks.sources import MalformedRow

if TYPE_CHECKING:
    from prerl.benchmarks.loading import benchmark, eval_sets, load_benchmark, references

_LOADERS = ("benchmark", "eval_sets", "load_benchmark", "references")


def __getattr__(name: str) -> Any:
    if name in _LOADERS:
        from prerl.benchmarks import loading

        return getattr(loading, name)
    raise AttributeError(f"module 'prerl.benchmarks' has no attribute {name!r}")


__all__ = ["BENCHMARKS", "MATH6", "OOD", "MalformedRow", "benchmark", "eval_sets", "load_benchmark", "references"]
