"""Math answers: ``prerl.rewards.math_reward`` (last ``\\boxed{}`` ≡ gold per math-verify).

math-verify bounds each parse and verify with ``signal.alarm``, which only works in a main thread;
large batches are therefore spread over worker *processes* (each scores in its own main thread),
never threads, so the per-call time limit holds in parallel too.
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor

from prerl.rewards import math_reward, score as score_serial

PARALLEL_MIN = 512  # below this a process pool costs more (start-up, imports) than it saves


def score(responses: list[str], answers: list[str], metas: list[dict], settings) -> list[float]:
    if settings.workers <= 1 or len(responses) < PARALLEL_MIN:
        return score_serial(responses, answers)
    chunk = max(1, len(responses) // (settings.workers * 8))
    with ProcessPoolExecutor(settings.workers, mp_context=multiprocessing.get_context("fork")) as pool:
        return list(pool.map(math_reward, responses, answers, chunksize=chunk))


def reference(answer: str) -> str:
    return f"The final answer is $\\boxed{{{answer}}}$."
