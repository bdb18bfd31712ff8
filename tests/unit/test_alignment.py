"""Gradient alignment's dot products (analysis/alignment.py), by hand: summed over parameters, the
unreached ones adding nothing (against the micro model: tests/integration/test_alignment_models.py)."""

import torch

from analysis import alignment


def test_dots_sum_over_parameters_and_skip_the_unreached():
    """⟨a, b⟩, |a|², |b|² per parameter, summed: a parameter the gradient does not reach (None) adds nothing."""
    a = (torch.tensor([1.0, 2.0]), None, torch.tensor([[3.0]]))
    b = (torch.tensor([4.0, -1.0]), torch.tensor([5.0]), torch.tensor([[2.0]]))
    assert alignment._dots(a, b) == (1 * 4 - 2 * 1 + 3 * 2, 1 + 4 + 9, 16 + 1 + 25 + 4)
