"""Numeric answers in free text (the word-problem task, ``data=word_problems``).

A small instruction-tuned model answers in words ("So Maya has 23 shells.") or GSM8K's way
("#### 23") far more often than in a ``\\boxed{}``. The answer read from a response, in order of
precedence:

1. the last ``\\boxed{...}``, judged by math-verify as every boxed answer is (``prerl.scoring.rewards.judge``);
2. else the number after the last ``####`` (GSM8K's answer line);
3. else the last number in the response, as lm-evaluation-harness's GSM8K "flexible-extract" filter
   reads one (lm_eval/tasks/gsm8k/gsm8k-cot.yaml: the last match of a number pattern).

Numbers may carry thousands separators (``1,234``) and decimals; a number equals the gold answer when
their values are equal (``2.0`` counts for ``2``).
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from fractions import Fraction

from prerl.scoring.rewards import judge, last_boxed

_NUMBER = r"-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?"
NUMBER = re.compile(_NUMBER)
HASH_ANSWER = re.compile(r"####\s*\$?\s*(" + _NUMBER + ")")


def value(text: str) -> Fraction | None:
    """The value of a number as written (commas dropped), None when it is not one."""
    try:
        return Fraction(Decimal(text.replace(",", "").strip()))
    except (InvalidOperation, ValueError):
        return None


def extract(response: str) -> str | None:
    """The number a response answers with when it has no boxed answer (rules 2 and 3 above)."""
    hashed = HASH_ANSWER.findall(response)
    if hashed:
        return hashed[-1]
    numbers = NUMBER.findall(response)
    return numbers[-1] if numbers else None


def correct(response: str, gold: str) -> float:
    boxed = last_boxed(response)
    if boxed is not None:
        return judge(boxed, gold)
    found = extract(response)
    if found is None:
        return 0.0
    answer, gold_value = value(found), value(gold)
    return float(answer is not None and answer == gold_value)


def score(responses: list[str], answers: list[str], metas: list[dict], settings=None) -> list[float]:
    return [correct(r, a) for r, a in zip(responses, answers)]


def reference(answer: str) -> str:
    return f"The answer is {answer}."
