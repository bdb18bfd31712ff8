"""The GPU check's arithmetic (prerl/commands/gpu_check.py): FLOPs per token, peak TFLOPS by device name,
and when a phase exceeds its plan (the whole check run degraded on the CPU:
tests/integration/test_gpu_check_degraded.py)."""

from __future__ import annotations

from transformers import AutoConfig

from prerl.commands import gpu_check
from prerl.plan.shapes import shape_of


def test_flops_per_token_are_palms():
    """6 N (N without the input embedding) + 12 L H Q T, by hand for a two-layer Qwen3 with an untied head."""
    config = AutoConfig.for_model(
        "qwen3",
        vocab_size=100,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=8,
    )
    layer = 32 * 32 + 2 * 32 * 16 + 32 * 32 + 3 * 32 * 64 + 2 * 32 + 2 * 8  # q, k, v, o, MLP, norms
    expected = 6 * (2 * layer + 32 + 100 * 32) + 12 * 2 * 4 * 8 * 10.0  # final norm and LM head; no embedding
    assert gpu_check.flops_per_token(shape_of(config, "tiny"), 10.0) == expected


def test_peak_tflops_by_device_name():
    assert gpu_check.peak_tflops("NVIDIA H100 80GB HBM3") == 989.0
    assert gpu_check.peak_tflops("NVIDIA H100 PCIe") == 756.0
    assert gpu_check.peak_tflops("NVIDIA H200") == 989.0
    assert gpu_check.peak_tflops("Tesla T4") is None


def test_a_phase_exceeds_its_plan_past_the_margin():
    assert not gpu_check.Measured("update", 105, 100).over(0.05)
    assert gpu_check.Measured("update", 106, 100).over(0.05)
