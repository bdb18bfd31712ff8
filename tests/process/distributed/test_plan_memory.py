"""The memory plan's weights, gradients and AdamW moments against the tensors a real update allocates,
in one process and on two gloo ranks, replicated and FSDP2-sharded (tests/unit/test_plan.py: activations)."""

import json
import sys

import pytest
from test_data_parallel import ROOT, TORCHRUN, run

WORKER = str(ROOT / "tests" / "process" / "distributed" / "memory_worker.py")


@pytest.mark.parametrize("ranks, strategy", [(1, "replicate"), (2, "replicate"), (2, "fsdp2")])
def test_weights_gradients_and_moments_are_planned_exactly(tmp_path, ranks, strategy):
    """Byte for byte: the plan counts each tensor's elements (under FSDP2 rank 0's padded share of each
    tensor's first dimension), the same as the storages the step leaves behind."""
    launcher = TORCHRUN if ranks > 1 else [sys.executable]
    run(launcher + [WORKER, str(tmp_path), strategy])
    results = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(ranks)]
    for rank in results:
        assert rank["measured"] == rank["planned"]
    if strategy == "fsdp2":  # each rank holds half of every tensor: a replicated plan would be twice as big
        assert results[0]["planned"]["weights"] * 2 == sum(r["measured"]["weights"] for r in results)
