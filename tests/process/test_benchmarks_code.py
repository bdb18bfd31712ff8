"""HumanEval on its shipped fixture (tests/fixtures/benchmarks): each program runs in the sandbox, a process
of its own (prerl/scoring/sandbox.py). The loader and its oracle, a shuffled oracle, and a fenced function
accepted while a wrong one and a hanging one are not (the other benchmarks: tests/unit/test_benchmarks.py)."""

import pytest
from helpers import BENCHMARK_FILES as FILES
from helpers import check_loader_and_oracle, check_shuffled_oracle

from prerl.data.eval_sets import load_benchmark
from prerl.scoring import ScoreSettings, grade


@pytest.mark.parametrize("name", ["humaneval"])
def test_loader_gives_one_record_shape_and_the_oracle_scores_full_marks(name):
    check_loader_and_oracle(name)


@pytest.mark.parametrize("name", ["humaneval"])
def test_shuffled_oracle_scores_nothing(name):
    check_shuffled_oracle(name)


def test_humaneval_accepts_a_fenced_function_and_rejects_a_wrong_one():
    ds = load_benchmark("humaneval", str(FILES["humaneval"]))
    meta = ds[0]["metadata"]  # HumanEval/45: triangle_area(a, h)
    good = "Here it is:\n```python\ndef triangle_area(a, h):\n    return a * h / 2\n```"
    wrong = "```python\ndef triangle_area(a, h):\n    return a * h\n```"
    assert grade(
        ["code"] * 3,
        [good, wrong, "    while True: pass"],
        [""] * 3,
        [meta] * 3,
        ScoreSettings(workers=2, code_timeout_s=2),
    ) == [1.0, 0.0, 0.0]
