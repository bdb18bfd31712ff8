"""The validation step: every config value that names a registered choice, and the knobs of each
chosen part, checked once the plug-ins have loaded and before any model, dataset or tracking store
is touched.

The dataclasses of ``prerl/config/schema.py`` check types and ranges as they are built and import nothing
heavy; the names live in registries of the modules that define the parts (and of plug-ins), so they
are checked here, at the start of ``train`` and ``evaluate.py``, in two stages: the infrastructure's
names (no torch), then the algorithm's and objective's parts. The errors of a stage are reported at
once, on one line, each naming the key, the value and what is allowed.
"""

from __future__ import annotations

from prerl.algo.registry import load_plugins, undeclared_params
from prerl.config.schema import ConfigError, TrainConfig


def part_errors(cfg: TrainConfig) -> list[str]:
    """The registered parts of the algorithm, the objective and the rollout correction, each with its own
    knob check."""
    from prerl.algo.advantages import ADVANTAGE_ESTIMATORS
    from prerl.algo.losses import AGGREGATIONS, KL_ESTIMATORS, POLICY_LOSSES
    from prerl.algo.objectives import OBJECTIVE_ADVANTAGES, SAMPLE_SELECTIONS
    from prerl.algo.rollout_correction import ROLLOUT_CORRECTIONS

    algo, obj, correction = cfg.algorithm, cfg.objective, cfg.rollout.correction
    algo_parts = [
        (ADVANTAGE_ESTIMATORS, algo.advantage),
        (POLICY_LOSSES, algo.policy_loss),
        (AGGREGATIONS, algo.loss_agg_mode),
        (KL_ESTIMATORS, algo.kl.estimator),
    ]
    obj_parts = [
        (OBJECTIVE_ADVANTAGES, obj.advantage),
        (SAMPLE_SELECTIONS, obj.samples),
        (AGGREGATIONS, obj.loss_agg_mode),
    ]
    return [
        *ADVANTAGE_ESTIMATORS.validate("algorithm.advantage", algo.advantage, algo, "algorithm"),
        *POLICY_LOSSES.validate("algorithm.policy_loss", algo.policy_loss, algo, "algorithm"),
        *AGGREGATIONS.validate("algorithm.loss_agg_mode", algo.loss_agg_mode, algo, "algorithm"),
        *KL_ESTIMATORS.validate("algorithm.kl.estimator", algo.kl.estimator, algo.kl, "algorithm.kl"),
        *OBJECTIVE_ADVANTAGES.validate("objective.advantage", obj.advantage, obj, "objective"),
        *SAMPLE_SELECTIONS.validate("objective.samples", obj.samples, obj, "objective"),
        *AGGREGATIONS.validate("objective.loss_agg_mode", obj.loss_agg_mode, obj, "objective"),
        *ROLLOUT_CORRECTIONS.validate("rollout.correction.name", correction.name, correction, "rollout.correction"),
        *undeclared_params(algo, "algorithm", algo_parts),
        *undeclared_params(obj, "objective", obj_parts),
    ]


def infrastructure_errors(cfg: TrainConfig) -> list[str]:
    """Rollout engine, dataset and eval sets (name tables in modules that import neither torch nor
    ``datasets``, so that a bad name is answered before the heavy imports)."""
    from prerl.data.eval_sets import BENCHMARKS
    from prerl.data.splits import DATASETS, SPLIT_NAMES
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
            errors.append(
                f"eval.sets.{name}: not a benchmark ({sorted(BENCHMARKS)}) nor a split of "
                f"data {cfg.data.name!r} ({list(splits)})"
            )
    return errors


def check_choices(cfg: TrainConfig) -> None:
    """Raise one ``ConfigError`` (a ``ValueError``) listing on one line every bad infrastructure name or,
    when those are right, every bad part name or knob, once the plug-ins (``prerl/algo/plugins/`` and
    ``cfg.plugins``) have loaded."""
    infrastructure = infrastructure_errors(cfg)  # needs no torch: a bad name here is answered at once
    if infrastructure:
        raise ConfigError("; ".join(infrastructure))
    load_plugins(cfg.plugins)  # the algorithm parts and plug-ins import torch
    parts = part_errors(cfg)
    if parts:
        raise ConfigError("; ".join(parts))
