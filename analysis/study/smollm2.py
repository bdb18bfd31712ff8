"""The paper's claims on a real pretrained model, SmolLM2-135M-Instruct: the study as data.

Its cells are the mini study's (``docs/mini-study.md``) on ``experiment=smollm2_dsrl``, the real model's
one shared setting; its claims are the mini study's (``analysis/study/claims.py``), with the same ids,
reworded where the real model's task differs and measured with the paper's own behaviour markers. Seeds
per part live in ``PRESETS`` and nowhere else.
"""

from __future__ import annotations

from dataclasses import replace

from . import claims
from .cells import ALONE, GRPO
from .spec import FULL, Part, Preset, StudySpec

PARTS = (
    Part("a", "DSRL vs GRPO at equal total updates", "a_dsrl_vs_grpo", lambda s: [GRPO, s.dsrl]),
    Part(
        "b",
        "The warm-up's space: NSR-PreRL vs NSR-RL, then GRPO",
        "b_warmup_space",
        lambda s: [GRPO, s.nsr_rl_warmup, s.dsrl],
    ),
    Part(
        "c",
        "PSR-PreRL, NSR-PreRL and PreRL (all samples), each for the whole run",
        "c_objectives",
        lambda s: [GRPO, *ALONE],
    ),
    Part(
        "d",
        "Warm-up length S (NSR-PreRL for S updates, then GRPO)",
        "d_warmup_length",
        lambda s: [GRPO] + [f"NSR-PreRL({w})→GRPO" for w in s.warmups],
    ),
    Part("e", "Behaviours with the paper's markers, against the base model"),
    Part("f", "Gradient alignment of the base model"),
    Part("g", "The NSR-PreRL diagnosis: where its gradient weight lands, and whether it collapses"),
)

# The full study: 5 seeds of (a) and (c), 3 of (b) and (d): 5 seeds of every cell would not fit a working
# week of one 2-core machine (the run times are in the exported runs: `python -m analysis.study plan`).
FULL_SEEDS = {"a": 5, "b": 3, "c": 5, "d": 3}

# The quick preview's sizes: one seed of every cell, 8 updates of 2 prompts x 4 samples of <= 64 tokens,
# evaluations of 16 + 16 word problems and 8 MATH-500 Level-1 problems x 2 samples.
QUICK_SIZES = (
    "prompts_per_step=2",
    "rollout.samples_per_prompt=4",
    "rollout.max_new_tokens=64",
    "eval.every_steps=4",
    "eval.samples_per_prompt=2",
    "eval.max_new_tokens=64",
    "data.test_problems=16",
    "data.ood_problems=16",
    "eval.sets.math500_level1.limit=8",
)

PRESETS = {
    FULL: Preset(
        FULL,
        "the full study",
        FULL_SEEDS,
        alignment=("--problems", "40", "--samples", "10"),  # 400 responses, as the paper's 400 rollouts
        diagnostics=("--steps", "20", "--probe-problems", "16"),  # DSRL's warm-up, update by update
        diagnostics_overrides=("experiment=smollm2_dsrl", "objective=nsr_prerl"),
        preview=False,
    ),
    "quick": Preset(
        "quick",
        "the QUICK preset: a preview of the pipeline on the real model (1 seed, 8 updates, tiny eval sets), "
        "NOT a result",
        dict.fromkeys(FULL_SEEDS, 1),
        ("total_steps=8", *QUICK_SIZES),
        {
            "a_dsrl_vs_grpo": ("warmup_steps=0,4",),
            "b_warmup_space": ("warmup_steps=4",),
            "d_warmup_length": ("warmup_steps=0,2,4,6",),
        },
        alignment=("--problems", "4", "--samples", "2"),
        diagnostics=("--base-only", "--probe-problems", "8"),
        diagnostics_overrides=("experiment=smollm2_dsrl", "objective=nsr_prerl", *QUICK_SIZES),  # its own steps
    ),
    "smoke": Preset(
        "smoke",
        "the SMOKE preset: the micro model on the mini task, 4 updates, a check that the pipeline works, NOT a result",
        {"a": 2, "b": 1, "c": 1, "d": 1},
        ("experiment=smoke", "eval.every_steps=2"),
        {
            "a_dsrl_vs_grpo": ("warmup_steps=0,2",),
            "d_warmup_length": ("warmup_steps=0,1,2,3",),
        },
        alignment=("--problems", "2", "--samples", "2"),
        diagnostics=("--steps", "2", "--probe-problems", "2", "--sample-every", "2"),
        diagnostics_overrides=("experiment=smoke", "objective=nsr_prerl"),
    ),
}


# What differs from the mini study's wording or measure; everything else is the mini study's claim.
REWORDED = {
    "7.1-other-baselines": {
        "untestable": "the study runs GRPO as its one baseline; PPO, REINFORCE++ and RLOO on the real model "
        "are `make sweep-baselines ARGS=experiment=smollm2_dsrl` (outside this study's budget)",
    },
    "7.4-dsrl-ood": {"quantity": "Avg@K on the word-problem OOD set (two steps), DSRL − GRPO"},
    "7.4-ood-benchmarks": {
        "untestable": "a 135M model answers almost none of GPQA-Diamond, MMLU-Pro, HumanEval or BBH; the "
        "study's out-of-distribution sets are the two-step word problems (7.4-dsrl-ood) and MATH-500 "
        "Level 1 (part a)",
    },
    "7.6-transitions-after-warmup": {
        "quantity": 'the paper\'s transition markers ("wait", "alternatively", "but") per response, DSRL at '
        "update S+1 − update 1",
        "measure": "dsrl_paper_transitions_change",
    },
    "7.6-reflections-after-warmup": {
        "quantity": 'the paper\'s reflection markers ("let me check", "verify") per response, DSRL at update '
        "S+1 − update 1",
        "measure": "dsrl_paper_reflections_change",
    },
    "7.6-grpo-elicits-less": {
        "quantity": "the paper's transition markers per response, change by update S+1: DSRL − GRPO",
        "measure": "dsrl_minus_grpo_paper_transitions_change",
    },
    "scale-qwen3-8b": {"untestable": "one real model (134.5M parameters); nothing here scales it"},
}

CLAIMS = tuple(replace(c, **REWORDED.get(c.id, {})) for c in claims.CLAIMS)

STUDY = StudySpec(
    name="smollm2",
    title="The paper's claims on a real pretrained model: SmolLM2-135M-Instruct",
    sweep_dir="smollm2_study",
    experiment="smollm2-study",
    parts=PARTS,
    presets=PRESETS,
    claims=CLAIMS,
    template="smollm2.md",
    results="results/studies/smollm2",
    doc="docs/smollm2-study.md",
    mini_base_classes={
        "mini": "docs/nsr-prerl-investigation/base-mini.json",
        "mini_styles": "docs/nsr-prerl-investigation/base-mini_styles.json",
    },
)
