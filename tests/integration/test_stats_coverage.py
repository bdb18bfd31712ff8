"""The coverage of prerl.eval.stats' 95% intervals on simulated experiments with a known difference
(analysis/bootstrap_coverage.py): a Monte Carlo, seconds of CPU."""

from analysis.bootstrap_coverage import World, coverage


# a Monte Carlo over many simulated experiments: seconds of CPU
def test_coverage_of_the_95_percent_intervals_on_simulated_experiments():
    """1000 simulated experiments (10 seeds per method, 100 problems, K = 8) with a true difference
    of 5 points: the 95% intervals of the difference and of a mean hold the truth in 93–97% of them
    (1000 replicates: a binomial standard error of 0.7 points, so the band is ±2.9 of them). Scores
    are multiples of 1/8 and the bootstrap sums them with integer weights, exactly in float64: the
    count is the same on any machine."""
    result = coverage(World(seeds=10, problems=100), replicates=1000, n_boot=1000, seed=0)
    assert 0.93 <= result.delta <= 0.97, result
    assert 0.93 <= result.mean <= 0.97, result
