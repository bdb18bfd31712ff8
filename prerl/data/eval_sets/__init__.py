"""MATH train and the paper's ten benchmarks: loaders, prompts and record shape (see ``loading``).

The names (``BENCHMARKS``) import nothing heavy, so that the config check can read them before torch
and ``datasets`` load; the loaders (``loading``, which imports ``datasets``) load on first use.
"""

from typing import TYPE_CHECKING, Any

from prerl.data.eval_sets.registry import BENCHMARKS, MATH6, OOD
from prerl.data.eval_sets.sources import MalformedRow

if TYPE_CHECKING:
    from prerl.data.eval_sets.loading import benchmark, eval_sets, load_benchmark, references

_LOADERS = ("benchmark", "eval_sets", "load_benchmark", "references")


def __getattr__(name: str) -> Any:
    if name in _LOADERS:
        from prerl.data.eval_sets import loading

        return getattr(loading, name)
    raise AttributeError(f"module 'prerl.data.eval_sets' has no attribute {name!r}")


__all__ = ["BENCHMARKS", "MATH6", "OOD", "MalformedRow", "benchmark", "eval_sets", "load_benchmark", "references"]
