"""HumanEval: complete the function, then run the task's tests on it in the sandbox.

A response either contains a fenced code block (the whole function, as the prompt asks; the last
block that defines the entry point, else the last block) or is a bare continuation of the prompt
(a function body, like HumanEval's canonical solutions). The program run is
``prompt + completion + test + check(entry_point)``; keeping the prompt keeps its imports and helpers.
"""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor

from prerl.scoring.sandbox import run_python

_BLOCK = re.compile(r"```[ \t]*(?:python3?|py)?[ \t]*\n(.*?)```", re.DOTALL | re.IGNORECASE)


def program(response: str, meta: dict) -> str:
    prompt, entry = meta["prompt"], meta["entry_point"]
    blocks = _BLOCK.findall(response)
    if blocks:
        defining = [b for b in blocks if re.search(rf"^\s*(?:async\s+)?def\s+{re.escape(entry)}\s*\(", b, re.M)]
        completion = "\n" + (defining or blocks)[-1]
    else:
        completion = response
    return f"{prompt}{completion}\n\n{meta['test']}\n\ncheck({entry})\n"


def score(responses: list[str], answers: list[str], metas: list[dict], settings) -> list[float]:
    def run(pair) -> float:
        response, meta = pair
        result = run_python(program(response, meta), settings.code_timeout_s, settings.code_memory_mb)
        return float(result.passed)

    with ThreadPoolExecutor(max(1, settings.workers)) as pool:  # threads only wait on subprocesses
        return list(pool.map(run, zip(responses, metas)))


def reference(answer: str) -> str:
    return answer  # HumanEval's canonical solution is already a completion of the prompt
