"""The analytic RMSNorm's config switch (prerl/models/rms_norm.py): on by default, off, and compiled, on the
micro model as load_policy loads it."""

from __future__ import annotations

import pytest
import torch

from prerl.config.schema import MiniModelConfig, ModelConfig
from prerl.models.loading import load_policy


@pytest.mark.parametrize(
    "settings, switched",
    [({}, True), ({"analytic_rms_norm": False}, False), ({"compile": True}, False)],
    ids=["default", "off", "compiled"],
)
def test_the_config_switch(cache_dir, settings, switched):
    cfg = ModelConfig(mini=MiniModelConfig.micro(), **settings)
    model, _ = load_policy(cfg, cache_dir, torch.device("cpu"))
    kinds = {type(m).__name__ for m in model.modules() if "RMSNorm" in type(m).__name__}
    assert kinds == ({"AnalyticQwen3RMSNorm"} if switched else {"Qwen3RMSNorm"})
