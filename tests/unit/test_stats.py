"""prerl.eval.stats: per-problem scores against the formulas, the bootstrap against exact cases (its
coverage on simulated experiments: tests/integration/test_stats_coverage.py)."""

import math

import numpy as np
import pytest

from analysis.bootstrap_coverage import World, coverage
from prerl.eval.stats import bootstrap_means, compare, pass_at_k, problem_scores, seed_interval


def test_pass_at_k_matches_the_combinatorial_formula():
    cases = [(4, 1, 2), (8, 3, 4), (32, 5, 8), (8, 0, 1), (8, 8, 8), (8, 6, 4), (5, 2, 2)]
    for n, c, k in cases:
        assert pass_at_k([c], n, k)[0] == pytest.approx(1 - math.comb(n - c, k) / math.comb(n, k), abs=1e-12)
    assert pass_at_k([1], 4, 2)[0] == pytest.approx(0.5)  # 1 − C(3,2)/C(4,2) = 1 − 3/6
    assert pass_at_k([2], 5, 2)[0] == pytest.approx(0.7)  # 1 − C(3,2)/C(5,2) = 1 − 3/10
    # vectorised over problems; k = 1 is the share correct
    np.testing.assert_allclose(pass_at_k([0, 1, 2, 3, 4], 4, 1), [0, 0.25, 0.5, 0.75, 1])
    with pytest.raises(ValueError, match="1 <= k <= n"):
        pass_at_k([1], 4, 5)
    with pytest.raises(ValueError, match=r"\[0, 4\]"):
        pass_at_k([5], 4, 2)


def test_problem_scores():
    np.testing.assert_allclose(problem_scores([0, 2, 8], 8, "avg"), [0, 0.25, 1])
    np.testing.assert_allclose(problem_scores([1, 4], 4, "pass_at_2"), [0.5, 1])
    with pytest.raises(ValueError, match="unknown per-problem metric"):
        problem_scores([1], 4, "median")


def test_seed_level_resampling_matches_its_exact_distribution():
    """Two seeds, one scoring 0 and one 1 on every problem: a replicate's mean is 0, 1/2 or 1 with
    probabilities 1/4, 1/2, 1/4 (which seeds were drawn), whatever the problems drawn."""
    x = np.vstack([np.zeros(10), np.ones(10)])
    reps = bootstrap_means({"m": {"s": x}}, n_boot=4000, seed=1)["m"]["s"]
    assert set(np.round(reps, 12)) <= {0.0, 0.5, 1.0}
    for value, p in ((0.0, 0.25), (0.5, 0.5), (1.0, 0.25)):
        share = np.mean(np.isclose(reps, value))
        assert abs(share - p) < 4 * math.sqrt(p * (1 - p) / 4000)  # 4 binomial standard errors


def test_problem_level_resampling_has_the_plug_in_variance():
    """One seed: replicates are means of N problems drawn with replacement, whose variance is the
    plug-in var(x)/N; B draws estimate it to a relative standard error of about sqrt(2/B)."""
    x = np.random.default_rng(0).uniform(size=(1, 50))
    reps = bootstrap_means({"m": {"s": x}}, n_boot=4000, seed=2)["m"]["s"]
    expected = x.var() / x.shape[1]
    assert abs(reps.var() / expected - 1) < 4 * math.sqrt(2 / 4000)
    assert reps.mean() == pytest.approx(x.mean(), abs=4 * math.sqrt(expected / 4000))


def test_pairing_cancels_what_the_problems_share():
    """Two methods with the same single run: paired, every replicate's difference is exactly 0;
    drawing problems independently per method gives a spread."""
    x = np.random.default_rng(0).integers(0, 5, size=(1, 40)) / 4
    rows = {"a": {"s": x}, "b": {"s": x.copy()}}
    paired = compare(rows, baseline="a", n_boot=500)["b"].delta["s"]
    assert (paired.mean, paired.lo, paired.hi) == (0.0, 0.0, 0.0)
    unpaired = compare(rows, baseline="a", n_boot=500, paired=False)["b"].delta["s"]
    assert unpaired.lo < 0 < unpaired.hi


def test_compare_points_average_and_errors():
    rows = {
        "a": {"s": np.array([[0.0, 1.0], [1.0, 1.0]]), "t": np.array([[0.5], [0.5]])},
        "b": {"s": np.array([[1.0, 1.0]]), "t": np.array([[1.0]])},
    }
    out = compare(rows, baseline="a", average="avg", n_boot=200)
    assert out["a"].estimate["s"].mean == pytest.approx(0.75) and out["a"].estimate["avg"].mean == pytest.approx(0.625)
    assert out["b"].delta["avg"].mean == pytest.approx(1.0 - 0.625) and out["a"].delta is None
    assert out["a"].n_seeds == 2 and out["b"].n_seeds == 1
    est = out["a"].estimate["s"]
    assert est.lo <= est.mean <= est.hi
    with pytest.raises(KeyError, match="baseline 'c'"):
        compare(rows, baseline="c")
    with pytest.raises(ValueError, match="pair them by id"):
        compare({"a": {"s": np.ones((1, 3))}, "b": {"s": np.ones((1, 4))}})
    with pytest.raises(ValueError, match="same seeds"):
        compare({"a": {"s": np.ones((2, 3)), "t": np.ones((1, 3))}})
    # seeded: the same inputs give the same interval
    assert compare(rows, baseline="a", n_boot=200)["b"].delta == compare(rows, baseline="a", n_boot=200)["b"].delta


def test_seed_interval():
    out = seed_interval([1.0, 2.0, 3.0], n_boot=1000)
    assert out.mean == pytest.approx(2.0) and 1.0 <= out.lo < 2.0 < out.hi <= 3.0
    assert seed_interval([4.0]) == seed_interval([4.0]) and seed_interval([4.0]).lo == 4.0


def test_paired_intervals_are_narrower_than_unpaired_on_correlated_data():
    """The simulated methods share each problem's difficulty: pairing by problem removes it."""
    world = World(seeds=10, problems=100)
    paired = coverage(world, replicates=200, n_boot=500, seed=1)
    unpaired = coverage(world, replicates=200, n_boot=500, seed=1, paired=False)
    assert paired.delta_width < 0.9 * unpaired.delta_width, (paired, unpaired)
    assert unpaired.delta >= paired.delta  # wider intervals, at least as often right
