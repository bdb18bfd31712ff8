"""Multiple choice (GPQA-Diamond, MMLU-Pro): extract the chosen option letter and compare it.

The prompt asks for a closing "The answer is (X)". Accepted, in order of precedence (the last
occurrence of the first pattern that matches wins): ``\\boxed{X}``, "answer is (X)", "Answer: X".
A letter outside the problem's options never counts.
"""

from __future__ import annotations

import re
import string

_PATTERNS = [
    re.compile(r"\\boxed\{\s*(?:\\text(?:bf)?\{)?\s*\(?([A-Z])\)?"),
    re.compile(r"(?i:answer\s+is)\s*:?\s*[*_$]*\s*\(?([A-Z])\)?(?![A-Za-z])"),
    re.compile(r"(?i:answer)\s*:\s*[*_$]*\s*\(?([A-Z])\)?(?![A-Za-z])"),
]


def extract_letter(response: str, n_options: int = 26) -> str | None:
    valid = string.ascii_uppercase[:n_options]
    for pattern in _PATTERNS:
        found = [m for m in pattern.findall(response) if m in valid]
        if found:
            return found[-1]
    return None


def score(responses: list[str], answers: list[str], metas: list[dict], settings=None) -> list[float]:
    out = []
    for response, answer, meta in zip(responses, answers, metas):
        n = len(meta.get("options") or []) or 26
        out.append(float(extract_letter(response, n) == answer.strip().upper()))
    return out


def reference(answer: str) -> str:
    return f"The answer is ({answer})."
