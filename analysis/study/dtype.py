"""One compute dtype per study: a study continued on another machine must compute as its runs did.

``model.autocast=auto`` (the real-model preset's setting) computes in bf16 on a CPU with bf16 matrix
units (AVX-512 BF16, AMX) or a GPU, and in fp32 elsewhere, under the same config and so the same
``config_hash``. A relaunch on a machine of the other kind would add runs of another dtype to the cells
without a word, so ``run`` refuses it before launching, naming both dtypes; the exported runs say theirs
in the ``compute_dtype`` tag.
"""

from __future__ import annotations

from typing import Iterable

from omegaconf import OmegaConf

from prerl.models.loading import compute_dtype, resolve_device


def machine_dtype(config) -> str:
    """What this machine computes a job's config in (``config``: as ``jobs.compose_config`` gives it)."""
    model = OmegaConf.to_object(config).model
    return compute_dtype(model, resolve_device(config.device)) or "float32"


def exported_dtypes(documents: Iterable[dict]) -> dict[str, int]:
    """How many exported runs were computed in each dtype."""
    counts: dict[str, int] = {}
    for document in documents:
        dtype = document.get("tags", {}).get("compute_dtype", "unknown")
        counts[dtype] = counts.get(dtype, 0) + 1
    return counts


def mismatch(mine: str, theirs: dict[str, int], autocast: str) -> str | None:
    """The one-line refusal when this machine's dtype is not the exported runs' one, else None."""
    others = {dtype: n for dtype, n in theirs.items() if dtype != mine}
    if not others:
        return None
    listed = ", ".join(f"{n} in {dtype}" for dtype, n in sorted(others.items()))
    return (
        f"this machine computes the study's runs in {mine} (model.autocast={autocast}), but its exported runs "
        f"were computed otherwise ({listed}): continue it on a machine that computes as they did (bf16: a CPU "
        "with AVX-512 BF16 or AMX, or a GPU), so that no cell mixes dtypes"
    )
