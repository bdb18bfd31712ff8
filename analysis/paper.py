"""The paper's reported numbers (``docs/paper.md#reported-results``), shown beside ours where known.

All are Qwen3-4B, Avg@32 in percent averaged over the six math benchmarks, unless said otherwise.
Per-benchmark columns, per-S warm-up numbers and the other baselines' rows were not found: those
cells stay empty rather than guessed.
"""

from __future__ import annotations

from typing import Optional

SETTING = "Qwen3-4B, Avg@32 (%) averaged over the six math benchmarks"

# docs/paper.md#main-results and #warm-up-ablation
AVERAGE = {"GRPO": 55.79, "DSRL": 57.54, "NSR-RL warm-up": 54.38}
# docs/paper.md#training-efficiency: DSRL needs this many times fewer steps than GRPO to first reach the accuracy
STEPS_RATIO = {"DSRL": {0.45: 2.5, 0.58: 1.6}}
# docs/paper.md#out-of-distribution-generalisation: DSRL − GRPO on OOD benchmarks (the baseline of the delta is not stated)
OOD_DELTA = {"gpqa_diamond": 3.79, "mmlu_pro": 5.37}
NOTES = {
    "warmup": "paper: best warm-up length S in [10, 25]; DSRL (19 NSR-PreRL updates) 57.54, GRPO 55.79; "
    "per-S numbers not reported",
    "objectives": "paper (qualitative): PSR-PreRL collapses, NSR-PreRL is effective, PreRL tracks RL "
    "for ~150 steps then collapses; no numbers reported",
    "ood": "paper: DSRL - GRPO = +3.79 GPQA-Diamond, +5.37 MMLU-Pro (Qwen3-4B)",
}


def paper_method(params: dict[str, str]) -> Optional[str]:
    """Which of the paper's rows a run is, from its config: plain GRPO, DSRL (NSR-PreRL warm-up then
    GRPO) or the NSR-RL warm-up control; None for anything else."""
    warmup, total = int(params.get("warmup_steps", 0)), int(params.get("total_steps", 0))
    algorithm, objective = params.get("algorithm.name"), params.get("objective.name")
    if algorithm != "grpo":
        return None
    if warmup == 0:
        return "GRPO"
    if warmup < total:
        return {"nsr_prerl": "DSRL", "nsr_rl": "NSR-RL warm-up"}.get(objective)
    return None
