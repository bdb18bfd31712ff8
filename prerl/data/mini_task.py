"""The mini setting's task: column addition written out step by step, with realistic flaws.

A problem adds two or more non-negative integers. A solution walks the columns from the right,
one sentence per column ("8+6+1=15, write 5 carry 1."), then reads the written digits back into
the answer and boxes it. The pre-training corpus mixes in the mistakes a careless student makes:

- a *slip*: a column sum off by one or two;
- a *dropped carry*: the carry from the previous column is forgotten.

After a mistake the writer sometimes notices it ("wait, check 8+6=14, write 4 carry 1.") and
repairs the column; otherwise the solution carries on consistently from the wrong state and boxes
a wrong answer. Correct columns are occasionally re-checked too ("check 7+5=12 ok."). A base model
pre-trained on this corpus therefore samples wrong paths at a rate set by ``FlawRates``: that is
the error mass NSR is meant to prune, and the reflection words are what behaviour counters count.

Everything here is plain Python driven by an explicit ``random.Random``, so a seed fixes the corpus.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class Difficulty:
    """Which problems a split draws: operand count and digits per operand (inclusive ranges)."""

    min_operands: int = 2
    max_operands: int = 2
    min_digits: int = 2
    max_digits: int = 3


@dataclass(frozen=True)
class FlawRates:
    """Per-column probabilities of the corpus writer's mistakes and reflections."""

    slip: float = 0.0  # column sum off by one or two
    drop_carry: float = 0.0  # forget the incoming carry (only when there is one)
    repair: float = 0.0  # notice a mistake and redo the column
    recheck: float = 0.0  # re-check a correct column


CLEAN = FlawRates()


@dataclass(frozen=True)
class Problem:
    operands: tuple[int, ...]

    @property
    def answer(self) -> int:
        return sum(self.operands)

    @property
    def question(self) -> str:
        return "What is " + "+".join(str(x) for x in self.operands) + "?"


def sample_problem(rng: random.Random, difficulty: Difficulty) -> Problem:
    n = rng.randint(difficulty.min_operands, difficulty.max_operands)
    operands = []
    for _ in range(n):
        digits = rng.randint(difficulty.min_digits, difficulty.max_digits)
        operands.append(rng.randint(10 ** (digits - 1), 10**digits - 1))
    return Problem(tuple(operands))


def _column_digits(problem: Problem, column: int) -> list[int]:
    """Digits of the operands that reach ``column`` (0 = units), in operand order."""
    return [(x // 10**column) % 10 for x in problem.operands if x >= 10**column]


def _column_sentence(terms: list[int], total: int) -> str:
    digit, carry = total % 10, total // 10
    expr = "+".join(str(t) for t in terms)
    tail = f", write {digit} carry {carry}." if carry else f", write {digit}."
    return f"{expr}={total}{tail}"


def solve(problem: Problem, rng: random.Random | None = None, flaws: FlawRates = CLEAN) -> str:
    """A step-by-step solution; with ``rng`` and ``flaws`` it may contain (repaired) mistakes."""
    width = max(len(str(x)) for x in problem.operands)
    sentences: list[str] = []
    written: list[int] = []
    carry = 0
    for column in range(width):
        digits = _column_digits(problem, column)
        true_terms = digits + ([carry] if carry else [])
        terms, total = true_terms, sum(true_terms)
        mistaken = False
        if rng is not None and carry and rng.random() < flaws.drop_carry:
            terms, total, mistaken = digits, sum(digits), True
        elif rng is not None and rng.random() < flaws.slip:
            total = max(0, total + rng.choice((-2, -1, 1, 2)))
            mistaken = True
        sentences.append(_column_sentence(terms, total))
        if mistaken and rng is not None and rng.random() < flaws.repair:
            terms, total = true_terms, sum(true_terms)
            sentences.append("wait, check " + _column_sentence(terms, total))
        elif not mistaken and rng is not None and rng.random() < flaws.recheck:
            sentences.append(f"check {'+'.join(str(t) for t in terms)}={total} ok.")
        written.append(total % 10)
        carry = total // 10
    if carry:
        written.append(carry)
        sentences.append(f"bring down {carry}.")
    answer = int("".join(str(d) for d in reversed(written)))
    sentences.append(f"So the answer is \\boxed{{{answer}}}.")
    return " ".join(sentences)


def messages(problem: Problem) -> list[dict[str, str]]:
    """The chat messages of a prompt, rendered later by the tokenizer's template. There is no system
    turn: the corpus teaches the format, and short prompts keep the CPU build fast."""
    return [{"role": "user", "content": problem.question}]
