"""The batch-wide loss denominators (a leaf module: losses, the critic and distributed share it)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import Tensor


@dataclass(frozen=True)
class Normaliser:
    """Batch-wide denominators of every aggregation mode, computed before micro-batching."""

    tokens: float  # Σ mask over the update batch
    sequences: float  # sequences with at least one masked token
    scale: float  # constant C of seq-mean-token-sum-norm

    @staticmethod
    def of(mask: "Tensor", scale: float) -> "Normaliser":
        return Normaliser(
            tokens=float(mask.sum().clamp(min=1)),
            sequences=float((mask.sum(-1) > 0).sum().clamp(min=1)),
            scale=float(scale),
        )
