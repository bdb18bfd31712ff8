"""MATH train and the paper's ten benchmarks: loaders, prompts and record shape (see ``loading``)."""

from prerl.benchmarks.loading import benchmark, eval_sets, load_benchmark, references
from prerl.benchmarks.registry import BENCHMARKS, MATH6, OOD
from prerl.benchmarks.sources import MalformedRow

__all__ = ["BENCHMARKS", "MATH6", "OOD", "MalformedRow", "benchmark", "eval_sets", "load_benchmark", "references"]
