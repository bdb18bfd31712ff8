import os

import pytest
import torch

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
if os.environ.get("PRERL_DETERMINISTIC") == "1":  # PRERL_DETERMINISTIC=1 make test: this process only, not the runs it starts
    torch.use_deterministic_algorithms(True)


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory):
    """A cache for the session's base models (the micro recipe ships, so most tests build nothing)."""
    return str(tmp_path_factory.mktemp("prerl-cache"))
