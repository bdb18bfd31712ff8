"""The claims' measurements: one plain function per measured quantity, ``(study, task) -> Interval | None``
(None: the study has no runs of the cells it compares), registered under its own name, which a claim's
``measure`` field gives (``analysis/study/claims.py``).

Accuracies are in points (percent), by the paired hierarchical bootstrap; training quantities are per
run, their intervals over seeds; alignment statistics are over responses.
"""

from __future__ import annotations

from typing import Callable, Optional

import numpy as np

from prerl.eval.stats import Interval

from ..aggregate import eval_curve
from .cells import GRPO, Study
from .quantities import (
    FINAL,
    accuracy_contrast,
    alignment_mean,
    alignment_token_contrast,
    behaviour_at,
    behaviour_change,
    cell_difference,
    cell_mean,
    change,
    end_window,
    seed_difference,
    start_window,
    warmup_end_window,
)

Measure = Callable[[Study, str], Optional[Interval]]
MEASURES: dict[str, Measure] = {}


def measure(fn: Measure) -> Measure:
    """Register ``fn`` under its name."""
    MEASURES[fn.__name__] = fn
    return fn


def measure_named(name: str) -> Measure:
    if name not in MEASURES:
        raise KeyError(f"no claim measurement {name!r}; the registered ones are {sorted(MEASURES)}")
    return MEASURES[name]


# --- accuracy: DSRL, GRPO and the base model ---------------------------------------------------


@measure
def dsrl_minus_grpo(study: Study, task: str) -> Optional[Interval]:
    return accuracy_contrast(study, task, [(study.dsrl, FINAL, 1), (GRPO, FINAL, -1)])


@measure
def grpo_minus_base(study: Study, task: str) -> Optional[Interval]:
    """GRPO's final accuracy minus the base model's (every run's eval at update 0)."""
    return accuracy_contrast(study, task, [(GRPO, FINAL, 1), (GRPO, 0, -1)])


@measure
def dsrl_minus_base(study: Study, task: str) -> Optional[Interval]:
    return accuracy_contrast(study, task, [(study.dsrl, FINAL, 1), (GRPO, 0, -1)])


@measure
def dsrl_minus_grpo_pass_at_largest_k(study: Study, task: str) -> Optional[Interval]:
    """DSRL − GRPO in Pass@k on the test set, at the largest k the runs logged."""
    runs = study.task_runs(task, [study.dsrl, GRPO])
    ks = sorted({int(k.rsplit("_", 1)[1]) for r in runs for k in r.history if k.startswith("eval/test/pass_at_")})
    if not ks:
        return None
    return accuracy_contrast(study, task, [(study.dsrl, FINAL, 1), (GRPO, FINAL, -1)], "test", f"pass_at_{ks[-1]}")


@measure
def dsrl_minus_grpo_ood(study: Study, task: str) -> Optional[Interval]:
    return accuracy_contrast(study, task, [(study.dsrl, FINAL, 1), (GRPO, FINAL, -1)], "ood")


@measure
def updates_to_midpoint_grpo_minus_dsrl(study: Study, task: str) -> Optional[Interval]:
    """GRPO's mean updates to first reach the midpoint between the base model's and GRPO's final accuracy,
    minus DSRL's (a run that never does counts as T + the eval interval)."""
    groups = study.groups(task)
    if GRPO not in groups or study.dsrl not in groups:
        return None
    curves = {label: [eval_curve(r, ["test"], "avg") for r in groups[label].runs] for label in (GRPO, study.dsrl)}
    base = np.mean([c[0]["test"] for c in curves[GRPO] if 0 in c])
    final = np.mean([c[max(c)]["test"] for c in curves[GRPO] if c])
    target = (base + final) / 2
    never = study.total_steps + int(groups[GRPO].runs[0].params.get("eval.every_steps", 10) or 10)
    reach = {
        label: [next((s for s in sorted(c) if c[s]["test"] >= target), never) for c in cs]
        for label, cs in curves.items()
    }
    return seed_difference([float(x) for x in reach[GRPO]], [float(x) for x in reach[study.dsrl]], study.opts)


# --- accuracy: the warm-up's space and length --------------------------------------------------


@measure
def nsr_rl_warmup_minus_grpo(study: Study, task: str) -> Optional[Interval]:
    return accuracy_contrast(study, task, [(study.nsr_rl_warmup, FINAL, 1), (GRPO, FINAL, -1)])


@measure
def dsrl_minus_nsr_rl_warmup(study: Study, task: str) -> Optional[Interval]:
    return accuracy_contrast(study, task, [(study.dsrl, FINAL, 1), (study.nsr_rl_warmup, FINAL, -1)])


@measure
def dsrl_minus_shorter_warmup(study: Study, task: str) -> Optional[Interval]:
    return accuracy_contrast(study, task, [(study.dsrl, FINAL, 1), (study.shorter_warmup, FINAL, -1)])


@measure
def longest_warmup_minus_dsrl(study: Study, task: str) -> Optional[Interval]:
    return accuracy_contrast(study, task, [(study.longest_warmup, FINAL, 1), (study.dsrl, FINAL, -1)])


# --- accuracy: the objectives alone ------------------------------------------------------------


@measure
def nsr_prerl_alone_at_s_minus_grpo_at_3s(study: Study, task: str) -> Optional[Interval]:
    """NSR-PreRL alone after S updates against GRPO after 3S (or T, when shorter)."""
    terms = [("NSR-PreRL alone", study.dsrl_steps, 1), (GRPO, min(3 * study.dsrl_steps, study.total_steps), -1)]
    return accuracy_contrast(study, task, terms)


@measure
def psr_prerl_alone_minus_base(study: Study, task: str) -> Optional[Interval]:
    return accuracy_contrast(study, task, [("PSR-PreRL alone", FINAL, 1), (GRPO, 0, -1)])


@measure
def nsr_prerl_alone_minus_base(study: Study, task: str) -> Optional[Interval]:
    return accuracy_contrast(study, task, [("NSR-PreRL alone", FINAL, 1), (GRPO, 0, -1)])


@measure
def nsr_prerl_alone_minus_psr_prerl_alone(study: Study, task: str) -> Optional[Interval]:
    return accuracy_contrast(study, task, [("NSR-PreRL alone", FINAL, 1), ("PSR-PreRL alone", FINAL, -1)])


@measure
def prerl_alone_minus_base(study: Study, task: str) -> Optional[Interval]:
    return accuracy_contrast(study, task, [("PreRL alone", FINAL, 1), (GRPO, 0, -1)])


# --- training logs: length, behaviours, solved prompts -----------------------------------------


@measure
def nsr_prerl_alone_length_change(study: Study, task: str) -> Optional[Interval]:
    """Training response length (tokens), NSR-PreRL alone: the last updates' mean minus the first's."""
    return cell_mean(
        study, task, "NSR-PreRL alone", change("train/response_length", start_window(study), end_window(study))
    )


def dsrl_behaviour_change(study: Study, task: str, category: str) -> Optional[Interval]:
    """DSRL's count per response at update S+1 (after the warm-up) minus at update 1 (the base model's)."""
    return cell_mean(study, task, study.dsrl, behaviour_change(category, study.dsrl_steps + 1))


def dsrl_minus_grpo_behaviour_change(study: Study, task: str, category: str) -> Optional[Interval]:
    return cell_difference(study, task, study.dsrl, GRPO, behaviour_change(category, study.dsrl_steps + 1))


@measure
def dsrl_transitions_change(study: Study, task: str) -> Optional[Interval]:
    return dsrl_behaviour_change(study, task, "transitions")


@measure
def dsrl_reflections_change(study: Study, task: str) -> Optional[Interval]:
    return dsrl_behaviour_change(study, task, "reflections")


@measure
def dsrl_minus_grpo_transitions_change(study: Study, task: str) -> Optional[Interval]:
    return dsrl_minus_grpo_behaviour_change(study, task, "transitions")


@measure
def dsrl_four_behaviours_change(study: Study, task: str) -> Optional[Interval]:
    return dsrl_behaviour_change(study, task, "four")


@measure
def dsrl_paper_transitions_change(study: Study, task: str) -> Optional[Interval]:
    """The paper's own transition markers (the real model writes them; the mini corpora cannot)."""
    return dsrl_behaviour_change(study, task, "paper_transitions")


@measure
def dsrl_paper_reflections_change(study: Study, task: str) -> Optional[Interval]:
    return dsrl_behaviour_change(study, task, "paper_reflections")


@measure
def dsrl_minus_grpo_paper_transitions_change(study: Study, task: str) -> Optional[Interval]:
    return dsrl_minus_grpo_behaviour_change(study, task, "paper_transitions")


@measure
def dsrl_minus_grpo_four_behaviours_at_end(study: Study, task: str) -> Optional[Interval]:
    return cell_difference(study, task, study.dsrl, GRPO, behaviour_at("four", study.total_steps))


@measure
def dsrl_fully_solved_change_in_warmup(study: Study, task: str) -> Optional[Interval]:
    """Fully solved prompts per update, DSRL: the warm-up's last updates' mean minus its first's."""
    fn = change("train/prompts/fully_solved", start_window(study), warmup_end_window(study))
    return cell_mean(study, task, study.dsrl, fn)


# --- the base model's gradient alignment -------------------------------------------------------


@measure
def mean_inner_product(study: Study, task: str) -> Optional[Interval]:
    return alignment_mean(study, task, "inner")


@measure
def negative_inner_product_share(study: Study, task: str) -> Optional[Interval]:
    return alignment_mean(study, task, "negative")


@measure
def mean_cosine(study: Study, task: str) -> Optional[Interval]:
    return alignment_mean(study, task, "cosine")


@measure
def early_tokens_gap_contrast(study: Study, task: str) -> Optional[Interval]:
    return alignment_token_contrast(study, task, "early")


@measure
def high_entropy_gap_contrast(study: Study, task: str) -> Optional[Interval]:
    return alignment_token_contrast(study, task, "entropy")
