"""The memory plan (prerl/plan) against what torch measures: the peak a real update allocates (torch's
profiler) against gradients + autocast copies + activations, and the docs' table of presets against the
planner (the plan's arithmetic: tests/unit/test_plan.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from helpers import SMALL_SMOLLM2, TINY_QWEN3, autocast, main_phase_config, optim_config, padded_rows, tiny_model

from prerl.algo.objectives import main_phase
from prerl.plan.activations import MicroBatch, Precision, update_peak
from prerl.plan.probe import PeakMemory
from prerl.plan.shapes import shape_of
from prerl.train.update import UpdateBatch, policy_update

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def grouped_kv_on_cpu(monkeypatch):
    monkeypatch.setenv("TRANSFORMERS_SDPA_FORCE_GQA", "1")  # what prerl/models/loading.py sets for CPU runs


def measured_update_peak(model, seqs, tokens: int, cast: bool) -> int:
    """The second of two updates (AdamW's moments exist, gradients were freed: the steady state the plan
    describes), above what was allocated when it started."""
    algo = main_phase_config()
    adv = torch.randn(len(seqs.input_ids), 1).expand_as(seqs.response_mask).clone()
    batch = UpdateBatch(seqs, adv, seqs.response_mask.clone())
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    args = (main_phase(algo), algo, optim_config(tokens), 64)
    with autocast(cast):
        policy_update(model, optimizer, batch, *args)
    optimizer.zero_grad(set_to_none=True)
    with autocast(cast), PeakMemory("cpu") as probe:
        policy_update(model, optimizer, batch, *args)
    return probe.peak


@pytest.mark.parametrize(
    "config",
    [TINY_QWEN3, SMALL_SMOLLM2],  # SmolLM2 shrunk to 7 M parameters: ~10 s each profiled
    ids=["qwen3", "smollm2"],
)
@pytest.mark.parametrize("cast", [False, True])
@pytest.mark.parametrize("checkpointing", [False, True])
def test_update_peak_is_planned_within_two_layer_buffers(config, cast, checkpointing):
    """Two micro-batches of three rows: the second runs with every gradient allocated, as every micro-batch
    after the first does. Tolerance: the plan takes each place where the backward peaks at one moment
    (prerl/plan/activations.py); at the true peak an op may hold its output and its input's gradient
    beside what that moment lists, at most two fp32 tensors of the widest per-token width (the MLP, the
    attention heads or the residual stream) of a micro-batch."""
    rows, width = 6, 40
    model = tiny_model(config, checkpointing=checkpointing)
    seqs = padded_rows(rows, width, config["vocab_size"])
    shape = shape_of(model.config, "tiny")
    tokens = rows // 2 * width
    mb = MicroBatch(tokens, width, on_gpu=False, scored=rows // 2 * (width - 1))
    precision = Precision(4, 2 if cast else 4, cast)
    planned = (
        shape.params * 4 + (shape.linear_params * 2 if cast else 0) + update_peak(shape, precision, mb, checkpointing)
    )
    measured = measured_update_peak(model, seqs, tokens, cast)
    widest = max(shape.intermediate, shape.heads * shape.head_dim, shape.hidden)
    assert abs(planned - measured) <= 2 * tokens * widest * 4, (planned, measured)


# sixteen configs composed and planned
def test_the_docs_table_is_the_planners():
    """docs/scaling-out.md#memory-plan pastes ``python -m prerl.plan --table``: a change to the plan shows there."""
    from prerl.plan.cli import table

    assert table() in (ROOT / "docs" / "scaling-out.md").read_text()
