"""Scorers by kind: each turns responses and gold answers (plus per-problem metadata) into 0/1 rewards.

| kind | benchmarks | rule |
|---|---|---|
| ``math`` | MATH, MATH500, AMC23, AIME24/25, Minerva, OlympiadBench | last ``\\boxed{}`` ≡ gold per math-verify |
| ``multiple_choice`` | GPQA-Diamond, MMLU-Pro | the chosen option letter equals the gold letter |
| ``bbh`` | BBH | the text after the last "answer is" equals the target, in the task's answer format |
| ``code`` | HumanEval | the completed function passes the task's tests in the sandbox |
| ``number`` | the word-problem task | a boxed answer per math-verify, else GSM8K's ``#### N``, else the last number |

Every kind also writes a *reference response*, a response its scorer accepts for a gold answer; the
oracle rollout engines use it when a problem has no worked solution of its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from prerl.scoring import bbh, boxed, choice, humaneval, number


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
    "number": Scorer(number.score, number.reference),
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


@dataclass(frozen=True)
class Grader:
    """The rewards of responses to the problems of one dataset: the one reward path of training and
    evaluation alike, so batching (per kind, worker processes) and time limits are the same for both.

    Each row brings its ``scorer`` kind (math when the rows have none, as in the mini task), its gold
    ``answer`` and its ``metadata``; ``grader(texts, problems)`` scores ``texts[i]`` as a response to row
    ``problems[i]``.
    """

    kinds: list[str]
    answers: list[str]
    metas: list[dict]
    settings: ScoreSettings = ScoreSettings()

    @classmethod
    def of(cls, dataset, settings: ScoreSettings = ScoreSettings()) -> Grader:
        columns, n = dataset.column_names, len(dataset)
        kinds = dataset["scorer"] if "scorer" in columns else ["math"] * n
        metas = dataset["metadata"] if "metadata" in columns else [{}] * n
        return cls(list(kinds), list(dataset["answer"]), list(metas), settings)

    def __call__(self, texts: list[str], problems: list[int]) -> list[float]:
        kinds = [self.kinds[p] for p in problems]
        answers, metas = [self.answers[p] for p in problems], [self.metas[p] for p in problems]
        return grade(kinds, texts, answers, metas, self.settings)
