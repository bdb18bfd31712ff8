"""Templated arithmetic word problems: the real-model task (``data=word_problems``).

A problem is a short story about somebody's things ("Maya has 14 shells. She finds 9 more shells. How
many shells does Maya have now?") built from a template, a name and an item, with every number drawn
from a seed. Its *steps* are the operations the story chains: a one-step problem has two numbers and
one addition or subtraction, a two-step problem three numbers and two operations. The in-distribution
splits (train and test) and the harder out-of-distribution split differ in steps and digits
(``DataConfig``'s ``*_operands`` count the numbers, ``*_digits`` their sizes), and no test or
out-of-distribution story appears in train.

The answer is a non-negative integer, graded by the ``number`` scorer (``prerl.scoring.number``): a
model that answers in words ("Maya has 23 shells now.") is read by its last number, GSM8K's
``#### 23`` and a boxed answer are read too. Why this task, its sizes and the sampling temperature
were fixed from the base model's accuracy alone, before any method ran: docs/smollm2-task.md.

Everything is plain Python driven by an explicit ``random.Random``, so a seed fixes the splits.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Callable

# Which problems a split draws, as for the mini task: numbers per problem (steps + 1) and digits per number.
from prerl.data.mini_task import Difficulty

NAMES = (
    ("Maya", "She"),
    ("Leo", "He"),
    ("Ava", "She"),
    ("Omar", "He"),
    ("Lena", "She"),
    ("Sam", "He"),
    ("Nora", "She"),
    ("Ivan", "He"),
    ("Priya", "She"),
    ("Tom", "He"),
    ("Zoe", "She"),
    ("Ben", "He"),
)
ITEMS = ("apples", "marbles", "stickers", "books", "pencils", "coins", "shells", "stamps", "cards", "cookies")


@dataclass(frozen=True)
class Problem:
    """One story: its text, its numbers and the answer they give."""

    question: str
    numbers: tuple[int, ...]
    answer: int

    @property
    def key(self) -> tuple:
        """What makes two problems the same for the split's disjointness: the text itself."""
        return (self.question,)


# One step: a start amount changed once. Each change is a sentence and its sign; every amount, the
# answer included, is at least 2 (no "1 apples", no empty answers).
_FIRST = "{name} has {a} {item}."
_CHANGES: tuple[tuple[str, int], ...] = (
    ("{pron} finds {b} more {item}.", +1),
    ("{pron} buys {b} more {item}.", +1),
    ("A friend gives {obj} {b} more {item}.", +1),
    ("{pron} gives {b} {item} to a friend.", -1),
    ("{pron} loses {b} {item}.", -1),
    ("{pron} uses {b} of the {item}.", -1),
)
_QUESTIONS = ("How many {item} does {name} have now?", "How many {item} does {name} have at the end?")
_COMBINE = "{name} has {a} {item} and {other} has {b} {item}. How many {item} do they have together?"
_COMPARE = "{name} has {a} {item}. {other} has {b} fewer {item} than {name}. How many {item} does {other} have?"


def _number(rng: random.Random, difficulty: Difficulty, at_most: int | None = None) -> int:
    digits = rng.randint(difficulty.min_digits, difficulty.max_digits)
    low, high = (2 if digits == 1 else 10 ** (digits - 1)), 10**digits - 1  # 2: no "1 apples"
    if at_most is not None:
        high = min(high, at_most)
        low = min(low, high)
    return rng.randint(low, high)


def _story(rng: random.Random, difficulty: Difficulty, steps: int) -> Problem:
    """A start amount, ``steps`` changes (each up or down, never below zero), then the question."""
    name, pron = rng.choice(NAMES)
    item = rng.choice(ITEMS)
    obj = "her" if pron == "She" else "him"
    amount = _number(rng, difficulty)
    numbers, sentences = [amount], [_FIRST.format(name=name, a=amount, item=item)]
    for _ in range(steps):
        template, sign = rng.choice(_CHANGES)
        if sign < 0 and amount < 4:  # a decrease leaves at least 2
            template, sign = _CHANGES[0]
        change = _number(rng, difficulty, at_most=amount - 2 if sign < 0 else None)
        amount += sign * change
        numbers.append(change)
        sentences.append(template.format(pron=pron, obj=obj, b=change, item=item))
    sentences.append(rng.choice(_QUESTIONS).format(item=item, name=name))
    return Problem(" ".join(sentences), tuple(numbers), amount)


def _two_people(rng: random.Random, difficulty: Difficulty) -> Problem:
    """One step between two people: together (a + b) or fewer than (a − b, when a leaves room for it)."""
    (name, _), (other, _) = rng.sample(NAMES, 2)
    item = rng.choice(ITEMS)
    a = _number(rng, difficulty)
    if rng.random() < 0.5:
        b = _number(rng, difficulty)
        return Problem(_COMBINE.format(name=name, other=other, a=a, b=b, item=item), (a, b), a + b)
    if a < 4:
        b = _number(rng, difficulty)
        return Problem(_COMBINE.format(name=name, other=other, a=a, b=b, item=item), (a, b), a + b)
    b = _number(rng, difficulty, at_most=a - 2)
    return Problem(_COMPARE.format(name=name, other=other, a=a, b=b, item=item), (a, b), a - b)


# Kinds of one-step stories (a change of one person's amount, or two people) drawn with equal odds;
# longer problems chain changes.
_ONE_STEP: tuple[Callable[[random.Random, Difficulty], Problem], ...] = (
    lambda rng, difficulty: _story(rng, difficulty, 1),
    _two_people,
)


def sample_problem(rng: random.Random, difficulty: Difficulty) -> Problem:
    numbers = rng.randint(difficulty.min_operands, difficulty.max_operands)
    if numbers == 2:
        return rng.choice(_ONE_STEP)(rng, difficulty)
    return _story(rng, difficulty, numbers - 1)


def messages(problem: Problem, system_prompt: str | None = None) -> list[dict[str, str]]:
    """The chat turns of a prompt: the question as the user's turn, after ``system_prompt`` when one is
    given (else the tokenizer's template adds its own default system turn, if it has one)."""
    user = [{"role": "user", "content": problem.question}]
    return ([{"role": "system", "content": system_prompt}] if system_prompt else []) + user
