"""The paper's claims as data, and the verdict rule.

Each ``Claim`` reduces one claim of the paper (docs/paper.md#reported-results and
#gradient-alignment) to a quantity whose side of a reference value the paper states. ``measure`` names
the function that measures it (``analysis/study/claim_measures.py``); a claim with no measurement says
why it is ``untestable`` at this scale. ``CLAIMS`` is the mini study's table; a study on another model
rewords some of them (``analysis/study/smollm2.py``) and keeps their ids.

The verdict, per claim and task, on the quantity's 95% interval:

- reproduced: the interval excludes the claim's reference value (0 for a difference) on the paper's side;
- not reproduced: it excludes the reference on the other side;
- inconclusive at this power: the interval holds the reference.

The paper's own effect size is not part of the rule (its numbers are Qwen3-4B on six math benchmarks,
not these tasks); where the quantity is in the paper's units, ``paper_value`` lets a document say
whether the paper's number lies inside the interval.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from prerl.eval.stats import Interval

from .cells import Study
from .claim_measures import measure_named

REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE = "reproduced", "not reproduced", "inconclusive at this power"
NOT_TESTABLE = "not testable here"
NO_RUNS = "no runs"


@dataclass(frozen=True)
class Claim:
    """One claim: ``direction`` +1 says the quantity exceeds ``reference``, −1 that it falls below it;
    ``paper_value``: the paper's number in the quantity's units, when it is in them; ``skipped``: what
    the verdict column says of a claim without a measurement."""

    id: str
    text: str  # the paper's statement
    paper: str  # the paper's number(s), as it reports them
    quantity: str = ""  # what is measured here
    measure: str = ""  # the name of its function in analysis/study/claim_measures.py
    direction: int = +1
    reference: float = 0.0
    paper_value: Optional[float] = None
    unit: str = "points"
    untestable: str = ""  # why there is no measurement
    skipped: str = NOT_TESTABLE

    @property
    def measured(self) -> bool:
        return bool(self.measure)


def verdict(interval: Optional[Interval], direction: int, reference: float = 0.0) -> str:
    """The stated rule: the interval against the claim's reference value, on the paper's side."""
    if interval is None:
        return NO_RUNS
    above, below = interval.lo > reference, interval.hi < reference
    if (above and direction > 0) or (below and direction < 0):
        return REPRODUCED
    if above or below:
        return NOT_REPRODUCED
    return INCONCLUSIVE


@dataclass(frozen=True)
class Result:
    """One claim on one task: the interval (None when not measured), the verdict, and whether the paper's
    number lies inside the interval ("yes", "no", or "" when that cannot be said)."""

    interval: Optional[Interval]
    verdict: str
    inside: str = ""


def result(claim: Claim, study: Study, task: str) -> Result:
    if not claim.measured:
        return Result(None, f"{claim.skipped}: {claim.untestable}")
    interval = measure_named(claim.measure)(study, task)
    inside = ""
    if claim.paper_value is not None and interval is not None:
        inside = "yes" if interval.lo <= claim.paper_value <= interval.hi else "no"
    return Result(interval, verdict(interval, claim.direction, claim.reference), inside)


@dataclass(frozen=True)
class ClaimRow:
    """One claim and its result on each task of a study."""

    claim: Claim
    tasks: dict[str, Result]

    def on(self, task: str) -> Result:
        return self.tasks.get(task, Result(None, NO_RUNS))


def claim_rows(study: Study, claims: tuple[Claim, ...]) -> list[ClaimRow]:
    """Every claim, in order, with its result on every task of the study."""
    return [ClaimRow(c, {task: result(c, study, task) for task in study.tasks()}) for c in claims]


CLAIMS: tuple[Claim, ...] = (
    Claim(
        id="7.1-dsrl-beats-grpo",
        text="DSRL beats GRPO at equal total updates (Avg)",
        paper="57.54 vs 55.79: +1.75 (Qwen3-4B), +1.47 (8B)",
        quantity="Avg@K test, DSRL − GRPO, final update",
        measure="dsrl_minus_grpo",
        paper_value=1.75,
    ),
    Claim(
        id="7.1-grpo-beats-base",
        text="GRPO raises accuracy over the base model",
        paper="55.79 vs 41.26: +14.53",
        quantity="Avg@K test, GRPO final − base (update 0)",
        measure="grpo_minus_base",
        paper_value=14.53,
    ),
    Claim(
        id="7.1-dsrl-beats-base",
        text="DSRL raises accuracy over the base model",
        paper="57.54 vs 41.26: +16.28",
        quantity="Avg@K test, DSRL final − base",
        measure="dsrl_minus_base",
        paper_value=16.28,
    ),
    Claim(
        id="7.1-dsrl-pass-at-k",
        text="DSRL's gain holds across Pass@k (paper reports Pass@K beside Avg@32)",
        paper="not reported per k",
        quantity="Pass@K test (the largest k), DSRL − GRPO, final update",
        measure="dsrl_minus_grpo_pass_at_largest_k",
    ),
    Claim(
        id="7.1-other-baselines",
        text="DSRL outperforms PPO, REINFORCE++ and RLOO",
        paper="rows not found",
        untestable=(
            "the study runs GRPO as its one baseline; PPO, REINFORCE++ and RLOO on the mini tasks are "
            "`make sweep-baselines` (~70 more runs, outside this study's budget)"
        ),
        skipped="not tested in this study",
    ),
    Claim(
        id="7.2-nsr-rl-warmup-below-grpo",
        text="An NSR-RL warm-up (post-train space) ends below GRPO",
        paper="54.38 vs 55.79: −1.41",
        quantity="Avg@K test, NSR-RL(S)→GRPO − GRPO",
        measure="nsr_rl_warmup_minus_grpo",
        direction=-1,
        paper_value=-1.41,
    ),
    Claim(
        id="7.2-prerl-warmup-beats-rl-warmup",
        text="An NSR-PreRL warm-up beats an NSR-RL warm-up",
        paper="57.54 vs 54.38: +3.16",
        quantity="Avg@K test, DSRL − NSR-RL(S)→GRPO",
        measure="dsrl_minus_nsr_rl_warmup",
        paper_value=3.16,
    ),
    Claim(
        id="7.2-short-warmup-insufficient",
        text="Too short a warm-up stimulates too little (best S in [10, 25])",
        paper="per-S numbers not reported",
        quantity="Avg@K test, DSRL's S − the next shorter S tried",
        measure="dsrl_minus_shorter_warmup",
    ),
    Claim(
        id="7.2-long-warmup-hurts",
        text="Too long a warm-up hurts later training (over-exploration)",
        paper="per-S numbers not reported",
        quantity="Avg@K test, the longest S tried − DSRL's S",
        measure="longest_warmup_minus_dsrl",
        direction=-1,
    ),
    Claim(
        id="7.3-dsrl-fewer-steps",
        text="DSRL reaches an accuracy in fewer updates than GRPO",
        paper="2.5x fewer to 45%, 1.6x to 58%",
        quantity=(
            "updates to reach the midpoint between base and GRPO's final Avg@K, GRPO − DSRL (never: T + eval interval)"
        ),
        measure="updates_to_midpoint_grpo_minus_dsrl",
        unit="updates",
    ),
    Claim(
        id="7.3-nsr-prerl-20-vs-rl-60",
        text="NSR-PreRL alone reaches in S updates what RL reaches in 3S (AMC23, 20 vs 60+)",
        paper="20 vs 60+ steps",
        quantity="Avg@K test, NSR-PreRL alone at update S − GRPO at update min(3S, T)",
        measure="nsr_prerl_alone_at_s_minus_grpo_at_3s",
    ),
    Claim(
        id="7.4-dsrl-ood",
        text="DSRL generalises better out of distribution",
        paper="GPQA-Diamond +3.79, MMLU-Pro +5.37 (4B)",
        quantity="Avg@K on the mini OOD set (three operands), DSRL − GRPO",
        measure="dsrl_minus_grpo_ood",
    ),
    Claim(
        id="7.4-ood-benchmarks",
        text="OOD gains on GPQA-Diamond, MMLU-Pro, HumanEval, BBH",
        paper="+3.79, +5.37, +2.44 (8B)",
        untestable=(
            "the mini tasks are addition; there is no multiple-choice or code set at this scale "
            "(7.4-dsrl-ood is the mini analogue)"
        ),
    ),
    Claim(
        id="7.5-psr-prerl-degrades",
        text="PSR-PreRL (positives, pre-train space) degrades",
        paper="collapse (Figure 3a)",
        quantity="Avg@K test, PSR-PreRL alone final − base",
        measure="psr_prerl_alone_minus_base",
        direction=-1,
    ),
    Claim(
        id="7.5-nsr-prerl-effective",
        text="NSR-PreRL alone is effective",
        paper='"exceptionally effective"',
        quantity="Avg@K test, NSR-PreRL alone final − base",
        measure="nsr_prerl_alone_minus_base",
    ),
    Claim(
        id="7.5-nsr-beats-psr",
        text="NSR-PreRL beats PSR-PreRL",
        paper="qualitative",
        quantity="Avg@K test, NSR-PreRL alone − PSR-PreRL alone",
        measure="nsr_prerl_alone_minus_psr_prerl_alone",
    ),
    Claim(
        id="7.5-prerl-tracks-rl",
        text="PreRL (all samples) improves as RL does for its first ~150 steps",
        paper="tracks RL to ~150 steps",
        quantity="Avg@K test, PreRL alone final − base (T < 150)",
        measure="prerl_alone_minus_base",
    ),
    Claim(
        id="7.5-prerl-collapses-late",
        text="PreRL then collapses after ~150 steps",
        paper="collapse after ~150 steps",
        untestable=(
            "runs are T updates long (60 in the full study): the collapse the paper places after 150 "
            "steps lies outside every run"
        ),
    ),
    Claim(
        id="7.5-nsr-lengthens",
        text="NSR-PreRL makes responses longer",
        paper="length grows (no number)",
        quantity="training response length (tokens), NSR-PreRL alone: last 3 updates − first 3",
        measure="nsr_prerl_alone_length_change",
        unit="tokens",
    ),
    Claim(
        id="7.6-transitions-after-warmup",
        text="After the NSR-PreRL warm-up, transition thoughts rise vs the base model",
        paper="x14.89 after 20 steps",
        quantity="transitions per response, DSRL at update S+1 − update 1",
        measure="dsrl_transitions_change",
        unit="per response",
    ),
    Claim(
        id="7.6-reflections-after-warmup",
        text="After the NSR-PreRL warm-up, reflection thoughts rise vs the base model",
        paper="x6.54 after 20 steps",
        quantity="reflections per response, DSRL at update S+1 − update 1",
        measure="dsrl_reflections_change",
        unit="per response",
    ),
    Claim(
        id="7.6-grpo-elicits-less",
        text="GRPO over the same updates elicits transitions far more weakly",
        paper="weaker (no number)",
        quantity="transitions per response, change by update S+1: DSRL − GRPO",
        measure="dsrl_minus_grpo_transitions_change",
        unit="per response",
    ),
    Claim(
        id="7.6-four-behaviours-rise",
        text="The four behaviours rise during the NSR-PreRL phase",
        paper="rise (no number)",
        quantity="backtracking + verification + subgoal + enumeration per response, DSRL update S+1 − update 1",
        measure="dsrl_four_behaviours_change",
        unit="per response",
    ),
    Claim(
        id="7.6-four-behaviours-ceiling",
        text="The four behaviours end higher under DSRL than under GRPO",
        paper="higher ceiling",
        quantity="the four behaviours per response at the last update, DSRL − GRPO",
        measure="dsrl_minus_grpo_four_behaviours_at_end",
        unit="per response",
    ),
    Claim(
        id="7.6-fully-solved-rise",
        text="Fully solved prompts rise sharply during the NSR-PreRL phase",
        paper="rises sharply",
        quantity="fully solved prompts per update, DSRL: last 3 warm-up updates − first 3",
        measure="dsrl_fully_solved_change_in_warmup",
        unit="prompts",
    ),
    Claim(
        id="2.3-inner-positive",
        text="⟨∇log P(y), ∇log P(y|x)⟩ is positive (base model)",
        paper="mean +9.23 (min +0.94)",
        quantity="mean inner product per response",
        measure="mean_inner_product",
        unit="inner product",
    ),
    Claim(
        id="2.3-no-negative",
        text="No response has a negative inner product",
        paper="0% of 400",
        quantity="share of responses with a negative inner product",
        measure="negative_inner_product_share",
        direction=-1,
        reference=0.05,
        unit="share",
    ),
    Claim(
        id="2.3-cosine-positive",
        text="The two gradients point the same way",
        paper="mean cosine 0.44",
        quantity="mean cosine per response",
        measure="mean_cosine",
        paper_value=0.44,
        unit="cosine",
    ),
    Claim(
        id="2.3-early-tokens-diverge",
        text="log P(y_t|·) and log P(y_t|x,·) diverge most on early tokens",
        paper="Figure 2c",
        quantity="mean |gap| of the first 8 tokens − the rest",
        measure="early_tokens_gap_contrast",
        unit="nats",
    ),
    Claim(
        id="2.3-high-entropy-diverge",
        text="They diverge most on high-entropy tokens",
        paper="Figure 2c",
        quantity="mean |gap|, tokens above − below the median entropy",
        measure="high_entropy_gap_contrast",
        unit="nats",
    ),
    Claim(
        id="scale-qwen3-8b",
        text="The same holds on Qwen3-8B",
        paper="DSRL 58.47 vs GRPO 57.00",
        untestable="one model size per task (0.83M parameters); nothing here scales the model",
    ),
)
