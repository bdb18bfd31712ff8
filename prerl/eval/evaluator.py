"""Avg@K and Pass@k: sample K responses per problem and score them.

Avg@K is the mean reward over all K samples of all problems. Pass@k uses the unbiased estimator
of Chen et al. (2021) per problem (``prerl.eval.stats.pass_at_k``) for k = 1, 2, 4, … up to K (and K itself).

Under ``torchrun`` each rank evaluates a consecutive shard of a set's problems (all K samples of a
problem on one rank, ``evaluate_problems``) and the shards are gathered once to rank 0 in rank order,
which is problem order (``gather_result``): metrics and per-problem results are those of one process.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from prerl.eval.stats import pass_at_k
from prerl.parallel import distributed


def k_values(K: int) -> list[int]:
    ks, k = [], 1
    while k < K:
        ks.append(k)
        k *= 2
    return ks + [K]


@dataclass
class EvalResult:
    name: str
    K: int
    correct: np.ndarray  # [problems, K] 0/1
    responses: list[str]  # flattened problem-major
    truncated: list[bool]
    lengths: list[int] | None = None  # response tokens, flattened problem-major

    @property
    def avg(self) -> float:
        return float(self.correct.mean())

    def pass_at(self, k: int) -> float:
        return float(pass_at_k(self.correct.sum(1), self.K, k).mean())

    def metrics(self) -> dict[str, float]:
        """Metric names avoid '@' (MLflow rejects it): ``<set>/avg_at_K``, ``<set>/pass_at_k``."""
        out = {f"{self.name}/avg_at_{self.K}": self.avg}
        out.update({f"{self.name}/pass_at_{k}": self.pass_at(k) for k in k_values(self.K)})
        out[f"{self.name}/truncated_frac"] = float(np.mean(self.truncated))
        return out

    def per_problem(self, ids: list[str]) -> dict:
        """What paired statistics need: per problem its id, correct count out of K and mean length."""
        if len(ids) != len(self.correct):
            raise ValueError(f"{self.name}: {len(ids)} problem ids for {len(self.correct)} problems")
        lengths = (
            np.asarray(self.lengths, dtype=float).reshape(self.correct.shape).mean(1).round(2).tolist()
            if self.lengths is not None
            else None
        )
        return {
            "set": self.name,
            "K": self.K,
            "id": [str(i) for i in ids],
            "correct": self.correct.sum(1).astype(int).tolist(),
            "mean_length": lengths,
        }


def problem_ids(dataset) -> list[str]:
    """A set's problem ids: its ``id`` column, else the row index (the mini splits are fixed by their seed)."""
    return [str(i) for i in dataset["id"]] if "id" in dataset.column_names else [str(i) for i in range(len(dataset))]


def evaluate(
    engine,
    name: str,
    prompt_ids: list[list[int]],
    K: int,
    temperature: float,
    top_p: float,
    max_new_tokens: int,
    grader: Callable[[list[str], list[int]], list[float]],
) -> EvalResult:
    """K samples of each prompt; ``grader(texts, problems)`` (a ``scorers.Grader``) scores responses to
    the problems at those indices of ``prompt_ids``."""
    rollout = engine.generate(prompt_ids, K, temperature, top_p, max_new_tokens)
    rewards = grader(rollout.texts, rollout.group)
    correct = np.asarray(rewards, dtype=float).reshape(len(prompt_ids), K)
    return EvalResult(name, K, correct, rollout.texts, rollout.truncated, [len(r) for r in rollout.response_ids])


def evaluate_problems(
    engine,
    name: str,
    prompt_ids: list[list[int]],
    rows: list[int],
    K: int,
    temperature: float,
    top_p: float,
    max_new_tokens: int,
    grader,
) -> EvalResult:
    """Problems ``rows`` of a set whose prompts are ``prompt_ids``; ``grader(texts, problems)`` takes indices
    into the whole set. ``rows`` may be empty (a rank with no problem of a small set)."""
    return evaluate(
        engine,
        name,
        [prompt_ids[r] for r in rows],
        K,
        temperature,
        top_p,
        max_new_tokens,
        grader=lambda texts, group: grader(texts, [rows[g] for g in group]),
    )


def concat_results(parts: list[EvalResult]) -> EvalResult:
    """One result from results of consecutive problems of a set, in their order."""
    if len(parts) == 1:
        return parts[0]
    first = parts[0]
    lengths = None if any(p.lengths is None for p in parts) else [n for p in parts for n in p.lengths or []]
    return EvalResult(
        first.name,
        first.K,
        np.concatenate([p.correct.reshape(-1, first.K) for p in parts]),
        [t for p in parts for t in p.responses],
        [t for p in parts for t in p.truncated],
        lengths,
    )


def gather_result(part: EvalResult) -> EvalResult | None:
    """Every rank's shard (``distributed.shard`` of the problems) on rank 0, in problem order; ``None`` on
    the other ranks. One collective per set; none with one process."""
    parts = distributed.gather_to_main(part)
    return None if parts is None else concat_results(parts)
