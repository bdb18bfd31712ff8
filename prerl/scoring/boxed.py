"""Math answers: ``prerl.scoring.rewards.judge`` (last ``\\boxed{}`` ≡ gold per math-verify).

math-verify bounds each parse and verify with ``signal.alarm``, which only works in a main thread;
large batches are therefore spread over worker *processes* (each scores in its own main thread),
never threads, so the per-call time limit holds in parallel too. Either way each distinct
(boxed answer, gold) pair is judged once.
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor

from prerl.scoring.rewards import judge, last_boxed
from prerl.scoring.rewards import score as score_serial

PARALLEL_MIN = 512  # distinct pairs; below this a process pool costs more (start-up, imports) than it saves


def score(responses: list[str], answers: list[str], metas: list[dict], settings) -> list[float]:
    keys = [(last_boxed(r), a) for r, a in zip(responses, answers)]
    distinct = list(dict.fromkeys(keys))
    if settings.workers <= 1 or len(distinct) < PARALLEL_MIN:
        return score_serial(responses, answers)
    chunk = max(1, len(distinct) // (settings.workers * 8))
    with ProcessPoolExecutor(settings.workers, mp_context=multiprocessing.get_context("fork")) as pool:
        verdicts = dict(zip(distinct, pool.map(judge, *zip(*distinct), chunksize=chunk)))
    return [verdicts[key] for key in keys]


def reference(answer: str) -> str:
    return f"The final answer is $\\boxed{{{answer}}}$."
