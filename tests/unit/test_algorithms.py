"""DAPO's dynamic sampling on hand-made accuracies: only groups with mixed rewards are kept (the baseline
algorithms' real steps: tests/integration/test_algorithms_train.py)."""

import torch

import prerl.train.trainer as trainer


def test_dapo_dynamic_sampling_keeps_only_mixed_groups():
    acc = torch.tensor([1.0, 0, 1, 1, 0, 0, 1, 0])
    assert trainer.informative_groups(acc, [0, 0, 1, 1, 2, 2, 3, 3]) == [0, 3]
    assert trainer.informative_groups(torch.tensor([1.0, 0.0]), [0, 1]) == [0, 1]  # singletons kept
