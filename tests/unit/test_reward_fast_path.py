"""The reward's fast path and de-duplication change no verdict of math-verify (docs/performance.md#what-makes-a-step-cheaper).

``benchmarks/check_fast_path.py`` runs the same comparison over every benchmark copy in
a data folder (``--data-dir``); here it runs on the mini sets, the shipped benchmark fixtures and hand-picked pairs.
"""

import json
import sys
from fractions import Fraction
from pathlib import Path

import pytest

import prerl.scoring.rewards as rewards
from prerl.config.schema import DataConfig
from prerl.data.eval_sets import BENCHMARKS, load_benchmark, references
from prerl.data.splits import synthetic_splits
from prerl.rollout.oracle import derangement
from prerl.scoring import scorer
from prerl.scoring.rewards import judge, plain_number, score

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from check_fast_path import candidate_pairs, disagreements

FIXTURES = Path(__file__).parents[1] / "fixtures"
TRICKY = [json.loads(line) for line in (FIXTURES / "reward_fast_path.jsonl").read_text().splitlines()]


@pytest.mark.parametrize(
    "text, value",
    [
        ("12", Fraction(12)),
        (" -7 ", Fraction(-7)),
        ("-0", Fraction(0)),
        ("3/4", Fraction(3, 4)),
        ("-6/8", Fraction(-3, 4)),
        ("\\frac{3}{4}", Fraction(3, 4)),
        ("-\\dfrac{10}{4}", Fraction(-5, 2)),
        ("1/0", None),
        ("\\frac{1}{0}", None),
        ("0.5", None),
        ("+5", None),
        ("1,000", None),
        ("\\frac12", None),
        ("\u0663", None),
        ("1" * 19, None),
        ("x", None),
        ("", None),
    ],
)
def test_plain_number_reads_only_integers_and_simple_fractions(text, value):
    assert plain_number(text) == value


@pytest.mark.parametrize("row", TRICKY, ids=[r["why"] for r in TRICKY])
def test_tricky_pairs_get_math_verifys_verdict(row):
    assert judge(row["answer"], row["gold"], fast=False) == row["expected"]  # what math-verify says
    assert judge(row["answer"], row["gold"]) == row["expected"]  # and the fast path agrees


def test_fast_path_agrees_with_math_verify_on_the_mini_sets():
    splits = synthetic_splits(DataConfig())
    golds = list(splits["test"]["answer"]) + list(splits["ood"]["answer"]) + list(splits["train"]["answer"])[:300]
    ref = scorer("math").reference
    pairs = candidate_pairs(golds, [ref(g) for g in golds])
    bad, fast, _ = disagreements(pairs)
    assert bad == []
    assert fast > len(pairs) // 2  # the mini golds are integers: most pairs take the fast path


@pytest.mark.parametrize(
    "name", [n for n, b in BENCHMARKS.items() if b.scorer == "math" and b.keep is None]
)  # not slices
def test_fast_path_agrees_with_math_verify_on_the_benchmark_fixtures(name):
    ds = load_benchmark(name, str(FIXTURES / "benchmarks" / f"{name}.jsonl"))
    bad, _, _ = disagreements(candidate_pairs(list(ds["answer"]), references(ds)))
    assert bad == []


def test_oracle_and_shuffled_oracle_score_the_same_with_and_without_the_fast_path():
    splits = synthetic_splits(DataConfig())
    golds = list(splits["test"]["answer"]) + list(splits["ood"]["answer"])
    own = [scorer("math").reference(g) for g in golds]
    shuffled = [own[j] for j in derangement(len(own), seed=0)]
    for texts in (own, shuffled):
        assert score(texts, golds) == score(texts, golds, fast=False)
    assert sum(score(own, golds)) == len(golds)
    assert sum(score(shuffled, golds)) < len(golds) / 4  # only coinciding answers


def test_each_distinct_answer_gold_pair_is_judged_once(monkeypatch):
    calls = []

    def counting(content, gold, fast=True):
        calls.append((content, gold))
        return 1.0

    monkeypatch.setattr(rewards, "judge", counting)
    texts = ["\\boxed{3}", "so \\boxed{3}.", "\\boxed{4}", "no box", "\\boxed{3}"]
    golds = ["3", "3", "3", "3", "5"]
    assert score(texts, golds) == [1.0] * 5
    assert calls == [("3", "3"), ("4", "3"), (None, "3"), ("3", "5")]
