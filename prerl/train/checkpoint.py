"""Checkpoints that survive a crash: everything a run needs to continue bit-for-bit.

A checkpoint is one ``torch.save`` file per step under ``<output_dir>/checkpoints/``: policy,
optimizer, reference and critic weights, RNG states, the prompt stream's position, the step and
the MLflow run id. It is written to a temporary file and renamed into place, so a crash mid-write
leaves the previous checkpoint intact; only the newest ``keep_last`` are kept.

Under ``torchrun`` rank 0 writes it. What differs between ranks — the RNG states (ranks sample different
responses) and the running cost counts (each rank counts its own tokens) — is stored per rank
(``per_rank``) and each rank restores its own (``own``); what ranks share (weights, the prompt stream)
is stored once.
"""

from __future__ import annotations

import logging
import os
import random
import re
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from prerl.parallel import distributed

log = logging.getLogger(__name__)
PATTERN = re.compile(r"step_(\d{6})\.pt$")


def rng_state() -> dict[str, Any]:
    return {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
    }


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if state.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def per_rank(value: Any) -> list[Any] | None:
    """Every rank's ``value``, in rank order, for rank 0 to write (``None`` on the other ranks)."""
    return distributed.gather_to_main(value)


def own(values: Any) -> Any:
    """This rank's entry of a ``per_rank`` list. A checkpoint from before per-rank entries holds one
    value, which every rank takes (as it did when written)."""
    if not isinstance(values, list):
        return values
    if len(values) != distributed.world_size():
        raise ValueError(
            f"this checkpoint was written by {len(values)} processes and is resumed by "
            f"{distributed.world_size()}: each rank's random state belongs to its own rank, so resume "
            "with the same number of processes (or resume=never to start afresh)"
        )
    return values[distributed.rank()]


def checkpoints(directory: Path) -> list[Path]:
    """Complete checkpoints, oldest first (temporary files never match the pattern)."""
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if PATTERN.search(p.name))


def save(directory: Path, step: int, state: dict[str, Any], keep_last: int) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / f"step_{step:06d}.pt"
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=".pt")
    os.close(fd)
    try:
        torch.save(state, tmp)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    for old in checkpoints(directory)[:-keep_last]:
        old.unlink()
    return target


def load_latest(directory: Path) -> dict[str, Any] | None:
    """The newest checkpoint that loads; an unreadable one (e.g. a truncated file) is skipped."""
    for path in reversed(checkpoints(directory)):
        try:
            return torch.load(path, map_location="cpu", weights_only=False)
        except Exception as err:  # noqa: BLE001 - any unreadable file: fall back to the previous one
            log.warning("skipping unreadable checkpoint %s: %s", path, err)
    return None
