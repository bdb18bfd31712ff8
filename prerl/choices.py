"""Config values that name a registered choice (rollout engine, dataset, eval sets), checked against
their registries before any model, dataset or tracking store is touched.

The dataclasses of ``prerl/config.py`` check types and ranges as they are built; these names live in
registries of modules that config must not import (they import config), so they are checked here, at
the start of ``train`` and ``evaluate.py``. Every bad name is reported at once.
"""

from __future__ import annotations

from prerl.config import TrainConfig


def check_choices(cfg: TrainConfig) -> None:
    from prerl.benchmarks import BENCHMARKS
    from prerl.data import DATASETS, SPLIT_NAMES
    from prerl.rollout.base import ROLLOUT_ENGINES

    errors = []
    if cfg.rollout.engine not in ROLLOUT_ENGINES:
        errors.append(f"rollout.engine={cfg.rollout.engine!r}: choose one of {sorted(ROLLOUT_ENGINES)}")
    if cfg.data.name not in DATASETS:
        errors.append(f"data.name={cfg.data.name!r}: choose one of {sorted(DATASETS)}")
    splits = SPLIT_NAMES.get(cfg.data.name, ())
    for name, set_cfg in cfg.eval.sets.items():
        bench = set_cfg.benchmark or name
        if bench not in BENCHMARKS and bench not in splits:
            errors.append(f"eval.sets.{name}: not a benchmark ({sorted(BENCHMARKS)}) nor a split of "
                          f"data {cfg.data.name!r} ({list(splits)})")
    if errors:
        raise ValueError("; ".join(errors))
