"""Benchmarks as ``datasets.Dataset``s of one record shape.

A record has ``id``, ``messages`` (chat turns), ``answer`` (gold, a string), ``scorer`` (a kind in
``prerl.scoring``) and ``metadata`` (what the scorer needs, plus ``reference``: a response the scorer
accepts — the worked solution when the source has one — which the oracle rollout engines answer with).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable, Mapping

from datasets import Dataset

from prerl.data.eval_sets.registry import BENCHMARKS, Benchmark
from prerl.data.eval_sets.sources import MalformedRow, read_hub, read_local
from prerl.scoring import scorer

log = logging.getLogger(__name__)
SHIPPED = Path(__file__).with_name("shipped")  # benchmark slices that ship with prerl (their README: sources)


def benchmark(name: str) -> Benchmark:
    if name not in BENCHMARKS:
        raise ValueError(f"unknown benchmark {name!r}: choose one of {sorted(BENCHMARKS)}")
    return BENCHMARKS[name]


def load_benchmark(name: str, path: str | None = None, limit: int | None = None) -> Dataset:
    """``name``'s rows from ``path`` (JSONL / Parquet / zip), else its shipped copy, else the Hub, as
    records; ``limit`` keeps the first N."""
    spec = benchmark(name)
    path = path or (str(SHIPPED / spec.shipped) if spec.shipped else None)
    rows = read_local(path, spec.password) if path else read_hub(spec.hub_id, spec.configs, spec.split)
    records, empty = [], 0
    for index, (row, where) in enumerate(rows):
        if spec.keep is not None and not spec.keep(row):
            continue
        try:
            problem = spec.convert({"_index": index, **row})
        except (KeyError, TypeError, ValueError, IndexError) as err:
            raise MalformedRow(f"{where}: malformed {name} row: missing or bad field {err}") from None
        if not problem.answer.strip():
            empty += 1
            continue
        kind = scorer(spec.scorer)
        reference = problem.reference or kind.reference(problem.answer)
        records.append(
            {
                "id": problem.id,
                "messages": problem.messages,
                "answer": problem.answer,
                "scorer": spec.scorer,
                "metadata": {**problem.metadata, "reference": reference},
            }
        )
        if limit is not None and len(records) >= limit:
            break
    if empty:
        log.warning("%s: dropped %d row(s) with a missing or empty answer (%s)", name, empty, path or spec.hub_id)
    if not records:
        raise ValueError(f"{name}: no usable rows in {path or spec.hub_id}")
    log.info("%s: %d problems from %s", name, len(records), path or spec.hub_id)
    return Dataset.from_list(records)


def references(dataset: Dataset) -> list[str]:
    """The reference response per problem; rows without one (the mini task) get a boxed gold answer."""
    metas = dataset["metadata"] if "metadata" in dataset.column_names else [{}] * len(dataset)
    return [m.get("reference") or scorer("math").reference(a) for m, a in zip(metas, dataset["answer"])]


def eval_sets(eval_cfg, data_splits: Callable[[], Mapping[str, Dataset]]) -> dict[str, Dataset]:
    """The datasets named in ``eval.sets``: a benchmark (from its ``path``, ``eval.data_dir`` or the Hub)
    or a split of the data config (the mini task's ``test``/``ood``; ``data_splits`` is called only then)."""
    out, splits = {}, None
    for name, set_cfg in eval_cfg.sets.items():
        bench = set_cfg.benchmark or name
        if bench in BENCHMARKS:
            path = set_cfg.path
            if path is None and eval_cfg.data_dir:
                candidate = Path(eval_cfg.data_dir) / BENCHMARKS[bench].local_file
                path = str(candidate) if candidate.exists() else None
            out[name] = load_benchmark(bench, path, set_cfg.limit)
            continue
        splits = splits if splits is not None else data_splits()
        if bench not in splits:
            raise ValueError(
                f"eval.sets.{name}: not a benchmark ({sorted(BENCHMARKS)}) "
                f"nor a split of the data config ({sorted(splits)})"
            )
        split = splits[bench]
        out[name] = split.select(range(min(set_cfg.limit, len(split)))) if set_cfg.limit else split
    return out
