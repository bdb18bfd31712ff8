"""The real model's task (prerl/data/word_problems.py) and its scorer (prerl/scoring/number.py)."""

import random
import re

import pytest

from prerl.config.schema import DataConfig
from prerl.data import word_problems as wp
from prerl.data.splits import load_splits
from prerl.scoring import grade
from prerl.scoring.number import correct, extract


def read_story(question: str) -> int:
    """An independent reading of a story: what each sentence's numbers do to the amount asked about."""
    total = 0
    for sentence in re.split(r"(?<=[.?])\s+", question):
        numbers = [int(n) for n in re.findall(r"\d+", sentence)]
        if "fewer" in sentence:
            total -= numbers[0]
        elif "more" in sentence:
            total += numbers[0]
        elif re.search(r"\b(gives|loses|uses)\b", sentence):
            total -= numbers[0]
        else:  # "X has a ..." (and "Y has b ..."): amounts to start from, or to add up
            total += sum(numbers)
    return total


@pytest.mark.parametrize("operands", [2, 3, 4])
def test_every_story_says_what_its_answer_is(operands):
    rng = random.Random(operands)
    difficulty = wp.Difficulty(operands, operands, 1, 2)
    for _ in range(300):
        problem = wp.sample_problem(rng, difficulty)
        assert len(problem.numbers) == operands
        assert problem.answer == read_story(problem.question), problem.question
        assert problem.answer >= 2 and all(n >= 2 for n in problem.numbers)  # no "1 apples", no empty answer
        assert all(len(str(n)) <= 2 for n in problem.numbers)


def test_splits_are_seeded_disjoint_and_graded_as_numbers():
    cfg = DataConfig(name="word_problems", train_problems=300, test_problems=40, ood_problems=40, max_digits=2)
    first, again = load_splits(cfg), load_splits(cfg)
    assert first["test"]["messages"] == again["test"]["messages"]
    questions = {split: {m[-1]["content"] for m in first[split]["messages"]} for split in first}
    assert not questions["train"] & (questions["test"] | questions["ood"])
    assert set(first["train"]["scorer"]) == {"number"}
    assert all(len(re.findall(r"\d+", q)) == 3 for q in questions["ood"])  # two steps: three numbers
    other = load_splits(DataConfig(name="word_problems", seed=7, train_problems=300, test_problems=40))
    assert other["test"]["messages"] != first["test"]["messages"]


def test_a_system_prompt_goes_first_when_given():
    problem = wp.sample_problem(random.Random(0), wp.Difficulty())
    assert [m["role"] for m in wp.messages(problem)] == ["user"]
    assert [m["role"] for m in wp.messages(problem, "Be brief.")] == ["system", "user"]


@pytest.mark.parametrize(
    "response, gold, expected",
    [
        ("Maya has 3 + 40 = 43 marbles.", "43", 1.0),
        ("So she has 43 marbles now.\nThe answer is 43", "43", 1.0),
        ("3 + 40 = 43\n#### 43\nThe answer is: 43", "43", 1.0),
        ("#### 43 (I think 44)", "43", 1.0),  # GSM8K's answer line wins over a later number
        ("She has 43 marbles, then 12 more.", "43", 0.0),  # else the last number
        ("The answer is $\\boxed{43}$, not 44.", "43", 1.0),  # a boxed answer wins, math-verify judges it
        ("\\boxed{44} but really 43", "43", 0.0),
        ("They have 1,234 stamps.", "1234", 1.0),  # thousands separators
        ("It is 43.0 apples.", "43", 1.0),
        ("It is 43.5 apples.", "43", 0.0),
        ("3, 4 and 5", "5", 1.0),  # a list is not a thousands separator
        ("She has -3 cards.", "3", 0.0),
        ("No idea.", "43", 0.0),
        ("", "43", 0.0),
    ],
)
def test_the_number_scorer_reads_what_a_small_model_writes(response, gold, expected):
    assert correct(response, gold) == expected
    assert grade(["number"], [response], [gold], [{}]) == [expected]


def test_extraction_takes_the_hash_line_then_the_last_number():
    assert extract("a 1 b 2 #### 3 c 4") == "3"
    assert extract("a 1 b 2") == "2" and extract("none") is None
