"""The second mini task's corpus writer (prerl/data/mini_styles.py) and the diagnostics' token classes."""

import math
import random
import re

from transformers import AutoTokenizer

from analysis.nsr_diagnostics import opening_style, token_classes
from prerl.data import mini_styles as styles
from prerl.data import mini_task as task
from prerl.models.mini_model import SHIPPED, VARIANTS, build_dir


def boxed(text: str) -> int:
    return int(re.search(r"\\boxed\{(\d+)\}", text).group(1))


def test_styles_are_drawn_at_their_prior_whatever_the_problem():
    rng, n = random.Random(0), 4000
    easy, hard = task.Difficulty(2, 2, 1, 1), task.Difficulty(3, 3, 3, 3)
    for difficulty in (easy, hard):  # the same shares for one-digit and three-digit problems
        counts = {s: 0 for s in styles.STYLE_PRIOR}
        for _ in range(n):
            counts[opening_style(styles.solve(task.sample_problem(rng, difficulty), rng))] += 1
        for style, p in styles.STYLE_PRIOR.items():  # within 4 binomial standard deviations
            assert abs(counts[style] / n - p) < 4 * math.sqrt(p * (1 - p) / n), (difficulty, counts)


def test_guesses_are_error_prone_and_checked_solutions_always_right():
    rng = random.Random(1)
    problems = [task.sample_problem(rng, task.Difficulty(2, 2, 2, 3)) for _ in range(2000)]
    guesses = [boxed(styles.guess(p, rng)) == p.answer for p in problems]
    assert abs(sum(guesses) / len(guesses) - styles.GUESS_ACCURACY) < 4 * math.sqrt(0.24 / len(guesses))
    for p in problems[:300]:
        text = "Check each column. " + task.solve(p, rng, styles.VERIFIED)
        assert boxed(text) == p.answer


def test_token_classes_read_column_sentences():
    tok = AutoTokenizer.from_pretrained(build_dir(VARIANTS["mini"](), SHIPPED))
    text = "7+5+1=13, write 3 carry 1. wait, check 7+5=12 ok. So the answer is \\boxed{13}."
    ids = tok(text, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    classes = token_classes(ids, tok)
    digits = [(tok.decode([i]).strip(), c) for i, c in zip(ids, classes) if tok.decode([i]).strip().isdigit()]
    assert digits == [
        ("7", "operand"),
        ("5", "operand"),
        ("1", "operand"),
        ("1", "computed"),
        ("3", "computed"),
        ("3", "computed"),
        ("1", "computed"),
        ("7", "operand"),
        ("5", "operand"),
        ("1", "computed"),
        ("2", "computed"),
        ("1", "computed"),
        ("3", "computed"),
    ]
    assert classes[-1] == "eos" and classes.count("reflection") == 3  # wait, check, ok


def test_response_shape_counts_sentences_that_are_no_corpus_form():
    from analysis.nsr_diagnostics import response_shape

    rng = random.Random(2)
    corpus = [styles.solve(task.sample_problem(rng, task.Difficulty(2, 3, 1, 3)), rng) for _ in range(300)]
    corpus += [
        task.solve(task.sample_problem(rng, task.Difficulty(2, 3, 1, 3)), rng, task.FlawRates(0.12, 0.2, 0.35, 0.05))
        for _ in range(300)
    ]
    assert response_shape(corpus)["malformed"] == 0  # every sentence the corpus writes is a known form
    broken = "0+4=4, write 4. 1 carry 1. wait, check 1=1, write 1. So the answer is \\boxed{14}."
    assert response_shape([broken]) == {"sentences": 4.0, "malformed": 0.25}
