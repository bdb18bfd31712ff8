"""The second mini task, ``styles``: the same addition problems, solved in one of three styles whose
choice does not depend on the problem. It is built to carry the paper's premise.

The premise: pre-training already holds reasoning that the model rarely uses, and pruning wrong paths
in P(y) surfaces it. So the corpus writer picks a style at random for every document, before looking
at the problem:

- ``guess`` (60% of documents): the answer alone, "So the answer is \\boxed{579}.". It is terse and
  error-prone: right 40% of the time, otherwise one digit of the sum is off by one or two.
- ``columns`` (30%): the column-by-column method of the ``addition`` task (``prerl.data.mini_task``), made
  carefully: a slip or a dropped carry in 3% of columns, never noticed.
- ``checked`` (10%): "Check each column." and then the column method, written hastily (slips 15%,
  dropped carries 20%) but verified: every mistake is noticed and repaired with "wait, check ...",
  and 30% of the correct columns are re-checked. It always ends on the right answer.

A base model pre-trained on this corpus knows the careful and the verifying styles but samples the
guess most of the time. Because the style is chosen independently of the problem, it is decided by
the first tokens of the response and is the same under ``P(y | x)`` and ``P(y | c)``: wrong answers
are mostly guesses, so lowering ``P(y)`` of wrong responses moves mass away from guessing in both
spaces. Responses are not mostly copies of the prompt: a guess copies nothing, and a column sentence
copies two or three of its ten or so tokens.

This design (styles, rates and prior) was fixed before any training method was run on it; nothing
here was tuned on results. One change was made to the build, on the base model alone and before any
method ran: pre-trained for the default's 560 steps, the model had learnt the styles but not to read
the prompt (every column sentence added the wrong digits; Avg@8 0.2% on the test set), since only
the 40% of documents in a column style teach copying digits. ``conf/model/mini_styles.yaml``
pre-trains it for 1200 steps instead. The prompts, splits and grader are the ``addition`` task's (``data=mini``),
so the two tasks differ only in what pre-training taught.
"""

from __future__ import annotations

import random

from prerl.data import mini_task as task

STYLE_PRIOR = {"guess": 0.6, "columns": 0.3, "checked": 0.1}
GUESS_ACCURACY = 0.4
CAREFUL = task.FlawRates(slip=0.03, drop_carry=0.03)
VERIFIED = task.FlawRates(slip=0.15, drop_carry=0.2, repair=1.0, recheck=0.3)


def guess(problem: task.Problem, rng: random.Random) -> str:
    answer = problem.answer
    if rng.random() >= GUESS_ACCURACY:  # one digit of the sum off by one or two, staying non-negative
        digits = len(str(answer))
        while True:
            place = 10 ** rng.randrange(digits)
            wrong = answer + rng.choice((-2, -1, 1, 2)) * place
            if wrong >= 0 and wrong != answer:
                answer = wrong
                break
    return f"So the answer is \\boxed{{{answer}}}."


def solve(problem: task.Problem, rng: random.Random) -> str:
    """One corpus solution: a style drawn from ``STYLE_PRIOR`` (never from the problem), then written."""
    style = rng.choices(list(STYLE_PRIOR), weights=list(STYLE_PRIOR.values()))[0]
    if style == "guess":
        return guess(problem, rng)
    if style == "columns":
        return task.solve(problem, rng, CAREFUL)
    return "Check each column. " + task.solve(problem, rng, VERIFIED)
