"""Outcome reward: 1 when the last ``\\boxed{}`` of a response is equivalent to the gold answer.

math-verify decides equivalence. It falls back to the last number of unboxed text, so the box is
required here first. Its timeouts use ``signal.alarm``, which only works in the main thread; off
the main thread they are disabled (a pathological input can then be slow, but never crashes).
"""

from __future__ import annotations

import threading
from functools import lru_cache

from math_verify import parse, verify

BOX = "\\boxed{"
PARSE_TIMEOUT_S = 2
VERIFY_TIMEOUT_S = 2


def last_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}`` with balanced braces, or None."""
    start = text.rfind(BOX)
    while start != -1:
        depth, i = 1, start + len(BOX)
        while i < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            i += 1
        if depth == 0:
            return text[start + len(BOX) : i - 1]
        start = text.rfind(BOX, 0, start)  # unclosed box: try an earlier one
    return None


def _timeouts() -> tuple[int | None, int | None]:
    if threading.current_thread() is threading.main_thread():
        return PARSE_TIMEOUT_S, VERIFY_TIMEOUT_S
    return None, None


@lru_cache(maxsize=4096)
def _parse_gold(gold: str):
    parse_timeout, _ = _timeouts()
    return parse(f"\\boxed{{{gold}}}", parsing_timeout=parse_timeout)


def math_reward(response: str, gold: str) -> float:
    """1.0 if the last boxed answer in ``response`` equals ``gold`` per math-verify, else 0.0."""
    content = last_boxed(response)
    if content is None or not content.strip():
        return 0.0
    parse_timeout, verify_timeout = _timeouts()
    try:
        predicted = parse(f"\\boxed{{{content}}}", parsing_timeout=parse_timeout)
        if not predicted:
            return 0.0
        return float(verify(_parse_gold(gold), predicted, timeout_seconds=verify_timeout))
    except Exception:  # noqa: BLE001 - any parser failure or timeout is a wrong answer, not a crash
        return 0.0


def score(responses: list[str], golds: list[str]) -> list[float]:
    if len(responses) != len(golds):
        raise ValueError(f"score: {len(responses)} responses but {len(golds)} gold answers")
    return [math_reward(r, g) for r, g in zip(responses, golds)]


def overlong_penalty(lengths: list[int], max_tokens: int, buffer_tokens: int, factor: float) -> list[float]:
    """DAPO's soft overlong punishment: 0 up to max − buffer tokens, then linearly down to −factor."""
    if buffer_tokens <= 0:
        return [0.0] * len(lengths)
    start = max_tokens - buffer_tokens
    return [min(-(n - start) / buffer_tokens * factor, 0.0) for n in lengths]
