"""Reward extraction/verification and the Avg@K / Pass@k estimators."""

import numpy as np
import pytest

from prerl.eval.evaluator import EvalResult, k_values
from prerl.scoring.rewards import last_boxed, math_reward, score


def test_last_boxed_handles_nesting_and_takes_the_last():
    assert last_boxed(r"\boxed{1} then \boxed{\frac{1}{2}}") == r"\frac{1}{2}"
    assert last_boxed(r"\boxed{7} and an unclosed \boxed{8") == "7"
    assert last_boxed("no box, 42") is None


@pytest.mark.parametrize(
    "response, gold, expected",
    [
        (r"so \boxed{42}.", "42", 1.0),
        (r"so \boxed{41}.", "42", 0.0),
        ("the answer is 42", "42", 0.0),  # math-verify would take the last number; we require a box
        (r"\boxed{\frac{1}{2}}", "0.5", 1.0),
        (r"\boxed{}", "1", 0.0),
        (r"\boxed{\frac{", "1", 0.0),
        (r"\boxed{)(*&^}", "1", 0.0),
    ],
)
def test_math_reward(response, gold, expected):
    assert math_reward(response, gold) == expected


def test_score_checks_lengths():
    with pytest.raises(ValueError, match="2 responses but 1"):
        score(["a", "b"], ["1"])


def test_a_grader_scores_each_response_by_its_problems_kind_and_answer():
    """Training and evaluation share it: responses name their problems by row, in any order and repeated."""
    from datasets import Dataset

    from prerl.scoring import Grader

    rows = Dataset.from_dict(
        {
            "answer": ["42", "B"],
            "scorer": ["math", "multiple_choice"],
            "metadata": [{}, {"options": ["x", "y", "z"]}],
        }
    )
    grader = Grader.of(rows)
    texts = [r"\boxed{42}", "The answer is (B).", r"\boxed{B}", "The answer is (B).", r"\boxed{41}"]
    assert grader(texts, [0, 1, 0, 1, 0]) == [1.0, 1.0, 0.0, 1.0, 0.0]
    mini = Grader.of(Dataset.from_dict({"answer": ["7"]}))  # no scorer column (the mini task): math
    assert mini([r"\boxed{7}", "7"], [0, 0]) == [1.0, 0.0]


def test_eval_result_metrics():
    correct = np.array([[1, 0, 0, 0], [1, 1, 1, 1], [0, 0, 0, 0]], dtype=float)
    result = EvalResult("test", 4, correct, ["x"] * 12, [False] * 12)
    m = result.metrics()
    assert k_values(32) == [1, 2, 4, 8, 16, 32] and k_values(6) == [1, 2, 4, 6]
    assert m["test/avg_at_4"] == pytest.approx(5 / 12)
    assert m["test/pass_at_1"] == pytest.approx(m["test/avg_at_4"])
    assert m["test/pass_at_2"] == pytest.approx((0.5 + 1 + 0) / 3)
    assert m["test/pass_at_4"] == pytest.approx(2 / 3)
    assert all("@" not in key for key in m)


def test_overlong_shaping_matches_the_dapo_recipe_numbers():
    from prerl.scoring.rewards import overlong_penalty

    out = overlong_penalty([16384, 18432, 20480, 100], max_tokens=20480, buffer_tokens=4096, factor=1.0)
    assert out == pytest.approx([0.0, -0.5, -1.0, 0.0])
    assert overlong_penalty([20480], 20480, 0, 1.0) == [0.0]
