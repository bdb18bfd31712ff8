"""The memory plan: each phase's peak on one device, known before any weight loads.

``plan_for(cfg, target)`` reads the model's architecture (prerl/plan/shapes.py: a model built on the
meta device from its ``config.json``), adds up what every phase of a step holds (prerl/plan/memory.py,
activations in prerl/plan/activations.py) and names the phase that peaks. ``check(cfg)`` is what
``train.py`` runs before any weight loads: a run whose peak exceeds the device by more than
``plan.margin`` is refused in one line (``plan.check=false`` starts it anyway). ``python train.py
<overrides> --plan`` and ``python -m prerl.plan`` print the plan (prerl/plan/cli.py).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Optional

from prerl.config.schema import ConfigError, TrainConfig, parse_bytes
from prerl.plan.memory import PhaseMemory, Setup, Target, gib, plan_phases, vllm_kv_room, vllm_model_len
from prerl.plan.shapes import ModelShape, NoModelConfig, model_config, shape_of

log = logging.getLogger(__name__)

__all__ = ["Plan", "Target", "check", "plan_for", "target_for"]


@dataclass(frozen=True)
class Plan:
    setup: Setup
    source: str  # where the model's config.json was read
    phases: tuple[PhaseMemory, ...]

    @property
    def peak(self) -> PhaseMemory:
        return max(self.phases, key=lambda p: p.total)

    @property
    def device_bytes(self) -> Optional[int]:
        return self.setup.target.device_bytes

    def over(self) -> Optional[int]:
        """Bytes by which the peak exceeds the device (negative: room left); None if the device is unknown."""
        return None if self.device_bytes is None else self.peak.total - self.device_bytes

    def vllm_sequences(self) -> Optional[int]:
        """Sequences of ``max_model_len`` vLLM's share can hold beside its weights (None: no vLLM on a GPU)."""
        x = self.setup
        if x.cfg.rollout.engine != "vllm" or x.target.kind != "cuda" or x.target.device_bytes is None:
            return None
        share, weights, per_token = vllm_kv_room(x)
        return max(0, share - weights) // (per_token * vllm_model_len(x))


def shape_for(cfg: TrainConfig) -> tuple[ModelShape, str]:
    config, source = model_config(cfg.model, cfg.cache_dir)
    m = cfg.model
    name = m.name() if m.path is not None or m.gguf is not None else f"mini model {m.name()}"
    return shape_of(config, name), source


def plan_for(cfg: TrainConfig, target: Target, shape: Optional[tuple[ModelShape, str]] = None) -> Plan:
    """The plan of ``cfg`` on ``target``; ``shape``: the model's (shape, source) when already read."""
    model, source = shape or shape_for(cfg)
    setup = Setup(cfg, model, target)
    return Plan(setup, source, tuple(plan_phases(setup)))


def machine_memory() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def target_for(cfg: TrainConfig, ranks: Optional[int] = None, device_memory: Optional[str] = None) -> Target:
    """Where ``cfg`` runs: ``ranks`` (default: torchrun's WORLD_SIZE, else 1) and one device's memory:
    ``device_memory`` or ``plan.device_memory`` (a GPU unless ``device=cpu``), else the local GPU's,
    else, on a CPU run, the machine's memory divided among its local ranks (a run past it is killed
    by the kernel mid-run, or swaps)."""
    ranks = ranks or int(os.environ.get("WORLD_SIZE", "1"))
    memory = device_memory or cfg.plan.device_memory
    if memory is not None:
        return Target("cpu" if cfg.device == "cpu" else "cuda", parse_bytes(memory), ranks)
    import torch

    if cfg.device != "cpu" and torch.cuda.is_available():
        local = int(os.environ.get("LOCAL_RANK", "0"))
        return Target("cuda", torch.cuda.get_device_properties(local).total_memory, ranks)
    local_ranks = int(os.environ.get("LOCAL_WORLD_SIZE", str(ranks)))
    return Target("cpu", machine_memory() // local_ranks, ranks)


SHARDS = "the weights, gradients and moments each rank keeps"


def sharding(x: Setup) -> str:
    """What shards the resident state further: FSDP2 over the ranks there are, or over more ranks where
    there is one (FSDP2 on one rank changes nothing) or where it shards already."""
    if x.cfg.distributed.strategy == "fsdp2":
        return f"more ranks (FSDP2 shards {SHARDS} over them)"
    more = "" if x.target.ranks > 1 else " over more ranks"
    return f"distributed.strategy=fsdp2{more} (it shards {SHARDS})"


def remedy(plan: Plan) -> str:
    """What to change, for the phase that peaks: the settings that would shrink it (its own, then
    sharding); for vLLM's share, the largest that leaves room."""
    peak, device = plan.peak, plan.device_bytes
    if peak.name == "rollout (vLLM)" and device:
        share = sum(i.bytes for i in peak.items if i.category == "vLLM")
        highest = (device - (peak.total - share)) / device  # the device less what the trainer keeps
        if highest > 0:
            return f"rollout.vllm.gpu_memory_utilization <= {int(highest * 100) / 100:.2f}, or {sharding(plan.setup)}"
    *first, last = [*peak.remedies, sharding(plan.setup)]
    return ", ".join(first) + ", or " + last if first else last


def refusal(plan: Plan, margin: float) -> Optional[str]:
    """The one-line reason ``plan`` cannot run on its device, or None."""
    device, over = plan.device_bytes, plan.over()
    show = "python train.py <same overrides> --plan shows every phase; plan.check=false starts anyway"
    refused = next((p for p in plan.phases if p.refused is not None), None)
    if refused is not None:  # the code would refuse it, whatever the device
        return f"memory plan: the {refused.name} phase would be refused: {refused.refused} ({show})"
    sequences = plan.vllm_sequences()
    if sequences == 0:
        length = vllm_model_len(plan.setup)
        return (
            f"memory plan: vLLM's share (rollout.vllm.gpu_memory_utilization) cannot hold one sequence of "
            f"max_model_len={length} beside its weights: raise the share or lower rollout.vllm.max_model_len ({show})"
        )
    if device is None or over is None or over <= margin * device:
        return None
    peak = plan.peak
    return (
        f"memory plan: the {peak.name} phase needs {gib(peak.total)} GiB per device, {gib(over)} GiB over the "
        f"{gib(device)} GiB device (plan.margin={margin}): set {remedy(plan)} ({show})"
    )


def check(cfg: TrainConfig) -> Optional[Plan]:
    """Refuse ``cfg`` (a one-line ``ConfigError``) when its plan exceeds the device by more than
    ``plan.margin``; log a warning when it exceeds it by less. Skipped with ``plan.check=false`` and,
    with a log line, when the model's architecture is not known without a download."""
    if not cfg.plan.check:
        return None
    try:
        plan = plan_for(cfg, target_for(cfg))
    except NoModelConfig as err:
        log.warning("memory plan skipped: %s", err)
        return None
    reason = refusal(plan, cfg.plan.margin)
    if reason is not None:
        raise ConfigError(reason)
    over = plan.over()
    if over is not None and over > 0:
        log.warning(
            "memory plan: the %s phase needs %s GiB, above the device's %s GiB",
            plan.peak.name,
            gib(plan.peak.total),
            gib(plan.device_bytes or 0),
        )
    return plan
