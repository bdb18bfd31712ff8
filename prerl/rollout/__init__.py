"""Rollout engines: sample responses for prompts. ``make_engine`` picks one by config name."""

from prerl.rollout.base import (
    ROLLOUT_ENGINES,
    Rollout,
    RolloutEngine,
    RunNeeds,
    make_engine,
    ranks_per_engine,
    register_engine,
)

__all__ = [
    "ROLLOUT_ENGINES",
    "Rollout",
    "RolloutEngine",
    "RunNeeds",
    "make_engine",
    "ranks_per_engine",
    "register_engine",
]
