"""Mini-batches hold whole groups, and each epoch covers every row once (several optimizer steps per
rollout on the micro model: tests/integration/test_mini_batches_updates.py)."""

import torch

from prerl.train.update import mini_batches


def test_mini_batches_hold_whole_groups_and_each_epoch_covers_every_row_once():
    group = [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]
    parts = mini_batches(group, 2, 3, torch.Generator().manual_seed(0))
    assert len(parts) == 6 and sorted(map(len, parts)) == [4, 4, 4, 6, 6, 6]
    for epoch in range(3):
        rows = sorted(r for part in parts[2 * epoch : 2 * epoch + 2] for r in part)
        assert rows == list(range(10))
    for part in parts:
        assert {group[r] for r in part} == {g for g in group if any(group[r] == g for r in part)}
        assert all(sum(group[r] == g for r in part) == 2 for g in {group[r] for r in part})  # whole groups
    assert parts == mini_batches(group, 2, 3, torch.Generator().manual_seed(0))  # seeded
    assert len(mini_batches(group, 8, 1, torch.Generator().manual_seed(0))) == 5  # at most one group each
