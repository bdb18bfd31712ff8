"""Scorers by kind: each turns responses and gold answers (plus per-problem metadata) into 0/1 rewards.

| kind | benchmarks | rule |
|---|---|---|
| ``math`` | MATH, MATH500, AMC23, AIME24/25, Minerva, OlympiadBench | last ``\\boxed{}`` ≡ gold per math-verify |
| ``multiple_choice`` | GPQA-Diamond, MMLU-Pro | the chosen option letter equals the gold letter |
| ``bbh`` | BBH | the text after the last "answer is" equals the target, in the task's answer format |
| ``code`` | HumanEval | the completed function passes the task's tests in the sandbox |

Every kind also writes a *reference response*, a response its scorer accepts for a gold answer; the
oracle rollout engines use it when a problem has no worked solution of its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from prerl.scorers import bbh, boxed, choice, humaneval


@dataclass(frozen=True)
class ScoreSettings:
    workers: int = 2  # processes for math-verify, threads waiting on sandboxed programs
    code_timeout_s: float = 10.0
    code_memory_mb: int = 1024


@dataclass(frozen=True)
class Scorer:
    score: Callable[[list[str], list[str], list[dict], ScoreSettings], list[float]]
    reference: Callable[[str], str]


SCORERS: dict[str, Scorer] = {
    "math": Scorer(boxed.score, boxed.reference),
    "multiple_choice": Scorer(choice.score, choice.reference),
    "bbh": Scorer(bbh.score, bbh.reference),
    "code": Scorer(humaneval.score, humaneval.reference),
}


def scorer(kind: str) -> Scorer:
    if kind not in SCORERS:
        raise ValueError(f"scorer kind {kind!r}: choose one of {sorted(SCORERS)}")
    return SCORERS[kind]


def grade(
    kinds: list[str],
    responses: list[str],
    answers: list[str],
    metas: list[dict],
    settings: ScoreSettings = ScoreSettings(),
) -> list[float]:
    """Score each response with its own kind's scorer (batched per kind); one reward per response."""
    if not len(kinds) == len(responses) == len(answers) == len(metas):
        raise ValueError("grade: kinds, responses, answers and metas must have the same length")
    rewards = [0.0] * len(responses)
    for kind in sorted(set(kinds)):
        idx = [i for i, k in enumerate(kinds) if k == kind]
        scores = scorer(kind).score(
            [responses[i] for i in idx], [answers[i] for i in idx], [metas[i] for i in idx], settings
        )
        for i, s in zip(idx, scores):
            rewards[i] = float(s)
    return rewards


def settings_from(eval_cfg) -> ScoreSettings:
    return ScoreSettings(eval_cfg.score_workers, eval_cfg.code_timeout_s, eval_cfg.code_memory_mb)


def dataset_grader(dataset, eval_cfg) -> Callable[[list[str], list[int]], list[float]]:
    """``grader(texts, group)`` for the problems of ``dataset``: each row's ``scorer`` kind (math when the
    rows have none, as in the mini task), gold ``answer`` and ``metadata``."""
    columns = dataset.column_names
    kinds = dataset["scorer"] if "scorer" in columns else ["math"] * len(dataset)
    metas = dataset["metadata"] if "metadata" in columns else [{}] * len(dataset)
    answers, settings = dataset["answer"], settings_from(eval_cfg)

    def grader(texts: list[str], group: list[int]) -> list[float]:
        return grade([kinds[g] for g in group], texts, [answers[g] for g in group], [metas[g] for g in group], settings)

    return grader
