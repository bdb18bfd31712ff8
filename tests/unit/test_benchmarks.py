"""Loaders and scorers on the shipped fixtures (tests/fixtures/benchmarks): record shape, errors, oracles
(humaneval's, which run programs in the sandbox: tests/process/test_benchmarks_code.py)."""

import json
import logging

import pytest
from helpers import (
    BENCHMARK_FILES as FILES,
)
from helpers import (
    BENCHMARK_KINDS as KINDS,
)
from helpers import (
    SHIPPED_EVAL_SETS as SHIPPED,
)
from helpers import (
    check_loader_and_oracle,
    check_shuffled_oracle,
)
from helpers import (
    fixture_lines as _lines,
)

from prerl.config.schema import EvalConfig, EvalSetConfig
from prerl.data.eval_sets import BENCHMARKS, MalformedRow, eval_sets, load_benchmark
from prerl.scoring.bbh import extract, matches
from prerl.scoring.choice import extract_letter

# humaneval's oracle runs each program in the sandbox, a process of its own: tests/process/test_benchmarks_code.py
SCORED_IN_PROCESS = sorted(name for name in BENCHMARKS if KINDS[name] != "code")


@pytest.mark.parametrize("name", SCORED_IN_PROCESS)
def test_loader_gives_one_record_shape_and_the_oracle_scores_full_marks(name):
    check_loader_and_oracle(name)


@pytest.mark.parametrize("name", ["math500", "minerva", "aime25"])
def test_shuffled_oracle_scores_nothing(name):
    check_shuffled_oracle(name)


def test_a_slice_keeps_its_rows_and_ships_a_checked_copy():
    """MATH-500's Level 1 slice: from a copy of the whole benchmark only its Level 1 rows; with no path
    the copy that ships with prerl, whose digest its README records and whose rows are all Level 1."""
    import hashlib
    import re

    whole = [json.loads(line) for line in _lines(FILES["math500"])]
    sliced = load_benchmark("math500_level1", str(FILES["math500"]))
    assert sliced["id"] == [r["id"] for r in whole if r["level"] == 1] and len(sliced) < len(whole)
    shipped = FILES["math500_level1"]
    recorded = re.search(r"`math500_level1.jsonl`: `([0-9a-f]{64})`", (SHIPPED / "README.md").read_text())
    assert recorded and hashlib.sha256(shipped.read_bytes()).hexdigest() == recorded[1]
    rows = [json.loads(line) for line in _lines(shipped)]
    assert len(rows) == 43 and {r["level"] for r in rows} == {1}
    assert load_benchmark("math500_level1")["id"] == [r["unique_id"] for r in rows]


def test_rows_without_answer_are_dropped_and_counted(caplog):
    with caplog.at_level(logging.WARNING):
        ds = load_benchmark("math_train", str(FILES["math_train"]))
    assert "train/number_theory/7115.json" not in ds["id"] and len(ds) == 3
    assert "dropped 1 row(s)" in caplog.text


def test_malformed_rows_name_file_and_line(tmp_path):
    good = FILES["math500"].read_text().splitlines()
    bad_json = tmp_path / "bad.jsonl"
    bad_json.write_text("\n".join([good[0], good[1], '{"id": "x", "problem": ']) + "\n")
    with pytest.raises(MalformedRow, match=rf"{bad_json}:3: not valid JSON"):
        load_benchmark("math500", str(bad_json))
    missing = tmp_path / "missing.jsonl"
    missing.write_text(good[0] + "\n" + json.dumps({"id": "y", "answer": "1"}) + "\n")
    with pytest.raises(MalformedRow, match=rf"{missing}:2: malformed math500 row.*'problem'"):
        load_benchmark("math500", str(missing))


def test_parquet_and_limit(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [json.loads(line) for line in _lines(FILES["humaneval"])]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "he.parquet")
    ds = load_benchmark("humaneval", str(tmp_path / "he.parquet"), limit=2)
    assert ds["id"] == [r["id"] for r in rows[:2]]


def test_gpqa_zip_is_read_in_memory_and_hub_rows_map_too():
    ds = load_benchmark("gpqa_diamond", str(FILES["gpqa_diamond"]))
    row = ds[0]
    assert len(row["metadata"]["options"]) == 4 and row["answer"] in "ABCD"
    assert "(A) " in row["messages"][1]["content"] and "(D) " in row["messages"][1]["content"]
    # The Hub's own field names (Question, Correct Answer, Incorrect Answer 1..3) map to the same shape.
    hub_row = {
        "Question": "Q?",
        "Correct Answer": "right",
        "Incorrect Answer 1": "w1",
        "Incorrect Answer 2": "w2",
        "Incorrect Answer 3": "w3",
        "Record ID": "rec1",
    }
    problem = BENCHMARKS["gpqa_diamond"].convert(hub_row)
    assert problem.metadata["options"]["ABCD".index(problem.answer)] == "right" and problem.id == "rec1"


def test_hub_field_names_of_math_sets_map():
    convert = BENCHMARKS["math_train"].convert
    problem = convert(
        {"problem": "1+1?", "solution": r"so \boxed{2}.", "level": "Level 1", "type": "Algebra", "_index": 7}
    )
    assert (problem.answer, problem.id, problem.metadata["level"]) == ("2", "7", "Level 1")
    olympiad = BENCHMARKS["olympiadbench"].convert({"id": 5, "question": "Q", "final_answer": ["$3$"]})
    assert olympiad.answer == "3"
    amc = BENCHMARKS["amc23"].convert({"id": 1, "question": "Q", "answer": 27.0})
    assert amc.answer == "27"


def test_eval_sets_resolve_benchmarks_paths_data_dir_and_data_splits(tmp_path):
    (tmp_path / "math500").mkdir()
    (tmp_path / "math500" / "test.jsonl").write_text(FILES["math500"].read_text())
    cfg = EvalConfig(
        sets={
            "math500": EvalSetConfig(),
            "he": EvalSetConfig(benchmark="humaneval", path=str(FILES["humaneval"]), limit=1),
            "test": EvalSetConfig(limit=2),
        },
        data_dir=str(tmp_path),
    )
    called = []

    def splits():
        called.append(True)
        from datasets import Dataset

        return {"test": Dataset.from_dict({"messages": [[]] * 5, "answer": ["1"] * 5})}

    sets = eval_sets(cfg, splits)
    assert (len(sets["math500"]), len(sets["he"]), len(sets["test"])) == (3, 1, 2) and called == [True]
    with pytest.raises(ValueError, match="not a benchmark"):
        eval_sets(EvalConfig(sets={"nope": EvalSetConfig()}), splits)


@pytest.mark.parametrize(
    "response, n, expected",
    [
        ("so the answer is (C).", 4, "C"),
        ("The answer is **B**", 4, "B"),
        (r"Final: \boxed{D}", 4, "D"),
        ("Answer: A", 4, "A"),
        ("The answer is (E).", 4, None),  # not among four options
        ("I think it is B or C", 4, None),
        ("The answer is (A). Wait, the answer is (C).", 4, "C"),
    ],
)
def test_multiple_choice_letter_extraction(response, n, expected):
    assert extract_letter(response, n) == expected


@pytest.mark.parametrize(
    "response, target, ok",
    [
        ("So the answer is (B).", "(B)", True),
        ("So the answer is B.", "(B)", True),
        ("So the answer is (C).", "(B)", False),
        ("So the answer is false.", "False", True),
        ("So the answer is ] ].", "] ]", True),
        ("So the answer is beth  kenya.", "beth kenya", True),
        ("So the answer is 24.", "2", False),
        ("The result is 2.", "2", False),  # no "answer is": nothing to compare
    ],
)
def test_bbh_exact_match(response, target, ok):
    assert matches(extract(response), target) == ok


def test_oracle_engines_answer_in_order_and_shuffled_never_answers_its_own_problem():
    from prerl.rollout.oracle import OracleEngine, ShuffledOracleEngine

    class Tok:
        eos_token_id = 0

        def __call__(self, text, add_special_tokens=False):
            return {"input_ids": [ord(c) for c in text]}

    prompts, refs = [[1], [2], [1], [3]], ["a", "b", "c", "d"]  # prompt [1] appears twice
    oracle = OracleEngine(None, Tok(), None)
    oracle.set_references(prompts, refs)
    out = oracle.generate(prompts, 2, 1.0, 1.0, 8)
    assert out.texts == ["a", "a", "b", "b", "c", "c", "d", "d"] and out.response_ids[0] == [ord("a"), 0]
    shuffled = ShuffledOracleEngine(None, Tok(), None)
    shuffled.set_references([[1], [2], [3]], ["a", "b", "c"])
    assert all(t != r for t, r in zip(shuffled.generate([[1], [2], [3]], 1, 1.0, 1.0, 8).texts, "abc"))
