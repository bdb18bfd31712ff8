import os

import pytest

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory):
    """One micro base model build shared by the whole test session."""
    return str(tmp_path_factory.mktemp("prerl-cache"))
