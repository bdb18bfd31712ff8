"""What a run has spent: tokens generated and trained, seconds, peak memory (``cost/*`` metrics).

Per step the trainer logs the step's own counts; ``CostMeter`` adds them up so that every step also
carries the totals so far (``cost/*_total``), which the efficiency table reads to compare methods at
an equal budget of generated tokens or seconds. The totals are checkpointed, so a resumed run
continues them.
"""

from __future__ import annotations

import resource
import sys

import torch

# Per-step counts that are also accumulated into ``cost/<name>_total``.
ACCUMULATED = ("generated_tokens", "trained_tokens", "update_tokens", "train_seconds")
# Each rank counts its own tokens: these add up over ranks (seconds and memory are averaged).
TOKEN_COSTS = tuple(f"cost/{name}{suffix}" for name in ACCUMULATED[:3] for suffix in ("", "_total"))


def peak_memory_mb() -> dict[str, float]:
    """The process's peak resident memory, and the peak GPU memory allocated by torch on a GPU run."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kB on Linux, bytes on macOS
    out = {"cost/peak_rss_mb": rss / (2**20 if sys.platform == "darwin" else 2**10)}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        out["cost/peak_gpu_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return out


class CostMeter:
    """Running totals of the per-step costs."""

    def __init__(self):
        self.totals = {name: 0.0 for name in ACCUMULATED}

    def add(self, step_costs: dict[str, float]) -> dict[str, float]:
        """``cost/<name>`` for this step and ``cost/<name>_total`` so far, plus peak memory."""
        unknown = set(step_costs) - set(ACCUMULATED)
        if unknown:
            raise KeyError(f"unknown cost {sorted(unknown)}; known: {ACCUMULATED}")
        for name, value in step_costs.items():
            self.totals[name] += float(value)
        return (
            {f"cost/{k}": float(v) for k, v in step_costs.items()}
            | {f"cost/{k}_total": v for k, v in self.totals.items()}
            | peak_memory_mb()
        )

    def state_dict(self) -> dict[str, float]:
        return dict(self.totals)

    def load_state_dict(self, state: dict[str, float] | None) -> None:
        self.totals = {name: float((state or {}).get(name, 0.0)) for name in ACCUMULATED}
