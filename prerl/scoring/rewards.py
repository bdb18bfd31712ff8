"""Outcome reward: 1 when the last ``\\boxed{}`` of a response is equivalent to the gold answer.

math-verify decides equivalence. It falls back to the last number of unboxed text, so the box is
required here first. Its timeouts use ``signal.alarm``, which only works in the main thread; off
the main thread they are disabled (a pathological input can then be slow, but never crashes). Its
numeric comparison catches every ``Exception``, its own timeout included, and then compares
symbolically with no alarm left: ``\boxed{10^{10^{10^{10}}}}`` could run for ever. So each verdict
also runs under a CPU-time guard (``_cpu_guard``) that raises a ``BaseException``, which those
clauses do not catch, and raises again every second until the verdict returns: a wrong answer.

Three things keep the reward cheap without changing a single verdict (docs/performance.md#what-makes-a-step-cheaper):

- each distinct (boxed answer, gold) pair of a batch is judged once, and math-verify's verdicts are
  kept for the run (it is deterministic), so a repeated sample costs a dictionary look-up;
- each gold answer is parsed once per run;
- when *both* sides are a plain integer or a simple fraction of integers (``12``, ``-3/4``,
  ``\\frac{3}{4}``) the verdict is exact rational equality, which is what math-verify concludes for
  such pairs: it parses them to SymPy ``Integer``/``Rational`` and compares those exactly. Anything
  else (decimals, units, expressions, zero denominators, leading ``+``) goes to math-verify.
  ``benchmarks/check_fast_path.py`` and ``tests/unit/test_reward_fast_path.py`` compare the two on every
  benchmark copy and on the mini sets.
"""

from __future__ import annotations

import re
import signal
import threading
from contextlib import contextmanager
from fractions import Fraction
from functools import lru_cache

from math_verify import parse, verify

BOX = "\\boxed{"
PARSE_TIMEOUT_S = 2
VERIFY_TIMEOUT_S = 2
# CPU seconds one verdict may take whatever math-verify does with its own limits (two parses, a verify)
CPU_GUARD_S = 2.0 * (2 * PARSE_TIMEOUT_S + VERIFY_TIMEOUT_S)
VERDICT_CACHE = 1 << 16  # (answer, gold) verdicts kept per process; small strings, a few MB at most

# ASCII digits only: Python's \d also matches other scripts' digits, which math-verify does not read.
_INT = r"-?[0-9]{1,18}"
_PLAIN = [
    re.compile(rf"({_INT})"),  # 12, -7
    re.compile(rf"({_INT})/([0-9]{{1,18}})"),  # 3/4, -3/4
    re.compile(r"(-?)\\[dt]?frac\{([0-9]{1,18})\}\{([0-9]{1,18})\}"),
]  # \frac{3}{4}, -\dfrac{3}{4}


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


def plain_number(text: str) -> Fraction | None:
    """The value of an answer written as a plain integer or a simple fraction of integers, else None."""
    text = text.strip()
    for form, pattern in enumerate(_PLAIN):
        m = pattern.fullmatch(text)
        if m is None:
            continue
        if form == 0:
            return Fraction(int(m[1]))
        if form == 1:
            return Fraction(int(m[1]), int(m[2])) if int(m[2]) else None
        sign = -1 if m[1] else 1
        return Fraction(sign * int(m[2]), int(m[3])) if int(m[3]) else None
    return None


def _timeouts() -> tuple[int | None, int | None]:
    if threading.current_thread() is threading.main_thread():
        return PARSE_TIMEOUT_S, VERIFY_TIMEOUT_S
    return None, None


@lru_cache(maxsize=4096)
def _parse_gold(gold: str):
    parse_timeout, _ = _timeouts()
    return parse(f"\\boxed{{{gold}}}", parsing_timeout=parse_timeout)


class _VerdictOverrun(BaseException):
    """The CPU-time guard's signal: not an ``Exception``, so no ``except Exception`` inside math-verify
    or SymPy swallows it."""


@contextmanager
def _cpu_guard(seconds: float | None):
    """Raise ``_VerdictOverrun`` after ``seconds`` of this process's CPU time, then every second until
    the block exits (``ITIMER_VIRTUAL``: its own signal, so math-verify's ``SIGALRM`` is untouched)."""
    if seconds is None or threading.current_thread() is not threading.main_thread():
        yield
        return

    def overrun(signum, frame):
        raise _VerdictOverrun

    previous = signal.signal(signal.SIGVTALRM, overrun)
    signal.setitimer(signal.ITIMER_VIRTUAL, seconds, 1.0)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_VIRTUAL, 0)
        signal.signal(signal.SIGVTALRM, previous)


@lru_cache(maxsize=VERDICT_CACHE)
def _math_verify(content: str, gold: str, parse_timeout: int | None, verify_timeout: int | None) -> float:
    """math-verify's verdict on a boxed answer (the authority); the timeouts are part of the key.
    Without timeouts (off the main thread, or asked for) there is no CPU-time guard either."""
    try:
        with _cpu_guard(None if verify_timeout is None else CPU_GUARD_S):
            predicted = parse(f"\\boxed{{{content}}}", parsing_timeout=parse_timeout)
            if not predicted:
                return 0.0
            return float(verify(_parse_gold(gold), predicted, timeout_seconds=verify_timeout))
    except (Exception, _VerdictOverrun):  # noqa: BLE001 - a parser failure or an overrun is a wrong answer
        return 0.0


def judge(content: str | None, gold: str, fast: bool = True) -> float:
    """1.0 if the boxed answer ``content`` equals ``gold``; ``fast=False`` always asks math-verify."""
    if content is None or not content.strip():
        return 0.0
    if fast:
        value, gold_value = plain_number(content), plain_number(gold)
        if value is not None and gold_value is not None:
            return float(value == gold_value)
    return _math_verify(content, gold, *_timeouts())


def math_reward(response: str, gold: str, fast: bool = True) -> float:
    """1.0 if the last boxed answer in ``response`` equals ``gold`` per math-verify, else 0.0."""
    return judge(last_boxed(response), gold, fast)


def score(responses: list[str], golds: list[str], fast: bool = True) -> list[float]:
    """One reward per response; each distinct (boxed answer, gold) pair is judged once."""
    if len(responses) != len(golds):
        raise ValueError(f"score: {len(responses)} responses but {len(golds)} gold answers")
    keys = [(last_boxed(r), g) for r, g in zip(responses, golds)]
    verdicts = {key: judge(*key, fast=fast) for key in dict.fromkeys(keys)}
    return [verdicts[key] for key in keys]


def overlong_penalty(lengths: list[int], max_tokens: int, buffer_tokens: int, factor: float) -> list[float]:
    """DAPO's soft overlong punishment: 0 up to max − buffer tokens, then linearly down to −factor."""
    if buffer_tokens <= 0:
        return [0.0] * len(lengths)
    start = max_tokens - buffer_tokens
    return [min(-(n - start) / buffer_tokens * factor, 0.0) for n in lengths]
