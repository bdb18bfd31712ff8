"""The mini study: every claim of the paper on the two mini tasks (``docs/mini-study.md``), as data.

Parts (a)-(e) are the multiruns ``sweeps/mini_study/*.yaml``, all in one MLflow experiment with the tag
``sweep=mini_study``; a cell two parts share (S=0 is GRPO, S=DSRL's is DSRL) has one ``config_hash`` and
runs once. The document's (f) behaviours and (g) solved-prompt dynamics read the runs of (a)-(d); (h) is
the base models' gradient alignment, logged to the same experiment. The runs stay in the MLflow store
(nothing is exported) and the document is written from it (``analysis/study/mini_document.py``).
Seeds, sizes and warm-up lengths per preset live in ``PRESETS`` and nowhere else.
"""

from __future__ import annotations

from .cells import ALONE, GRPO
from .claims import CLAIMS
from .spec import FULL, Part, Preset, StudySpec

PARTS = (
    Part("a", "DSRL vs GRPO at equal total updates", "a_dsrl_vs_grpo", lambda s: [GRPO, s.dsrl]),
    Part(
        "b",
        "Warm-up length S (NSR-PreRL for S updates, then GRPO)",
        "b_warmup",
        lambda s: [GRPO] + [f"NSR-PreRL({w})→GRPO" for w in s.warmups],
    ),
    Part(
        "c", "Warm-up space: NSR-PreRL vs NSR-RL, then GRPO", "c_warmup_kind", lambda s: [GRPO, s.nsr_rl_warmup, s.dsrl]
    ),
    Part(
        "d",
        "PSR-PreRL, NSR-PreRL and PreRL (all samples), each for the whole run",
        "d_objectives",
        lambda s: [GRPO, *ALONE],
    ),
    Part(
        "e",
        "NSR weighting in the warm-up: group-relative r − mean vs unit −1",
        "e_nsr_weighting",
        lambda s: [s.dsrl, s.unit_weighting],
        baseline=lambda s: s.dsrl,
    ),
)

PRESETS = {
    # 10 cells x 2 tasks x 5 seeds (the sweep files' seeds) = 100 runs of 60 updates
    FULL: Preset(
        FULL,
        "the full study",
        dict.fromkeys("abcde", 5),
        alignment=("--problems", "40", "--samples", "10"),  # 400 responses, as the paper's 400 rollouts
        alignment_models=("mini", "mini_styles"),
        preview=False,
    ),
    # 8 cells x 2 tasks x 2 seeds = 32 runs of 20 updates of 8 prompts, DSRL's S = 5
    "quick": Preset(
        "quick",
        "the QUICK preset (a preview: 2 seeds, fewer updates; not the study)",
        dict.fromkeys("abcde", 2),
        (
            "total_steps=20",
            "prompts_per_step=8",
            "data.test_problems=32",
            "data.ood_problems=32",
            "eval.every_steps=5",
        ),
        {
            "a_dsrl_vs_grpo": ("warmup_steps=0,5",),
            "b_warmup": ("warmup_steps=0,5,10",),
            "c_warmup_kind": ("warmup_steps=5",),
            "e_nsr_weighting": ("warmup_steps=5",),
        },
        alignment=("--problems", "20", "--samples", "5"),
        alignment_models=("mini", "mini_styles"),
    ),
    # the micro model, 4 updates, DSRL's S = 2: a check that the pipeline works, not a result
    "smoke": Preset(
        "smoke",
        "the SMOKE preset (micro model, 4 updates: a check of the pipeline, NOT a result)",
        dict.fromkeys("abcde", 2),
        ("experiment=smoke", "model=micro", "eval.every_steps=2"),
        {
            "a_dsrl_vs_grpo": ("warmup_steps=0,2",),
            "b_warmup": ("warmup_steps=0,1,2,3",),
            "c_warmup_kind": ("warmup_steps=2",),
            "e_nsr_weighting": ("warmup_steps=2",),
        },
        alignment=("--problems", "4", "--samples", "2", "--max-new-tokens", "32"),
        alignment_models=("micro",),
    ),
}

STUDY = StudySpec(
    name="mini",
    title="The mini study: every claim of the paper on the mini tasks",
    sweep_dir="mini_study",
    experiment="mini-study",
    parts=PARTS,
    presets=PRESETS,
    claims=CLAIMS,
    template="mini.md",
    doc="docs/mini-study.md",
    previews="outputs/mini-study-{preset}",
)
