import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest
import torch

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
if (
    os.environ.get("PRERL_DETERMINISTIC") == "1"
):  # PRERL_DETERMINISTIC=1 make test: this process only, not the runs it starts
    torch.use_deterministic_algorithms(True)

TESTS = Path(__file__).resolve().parent
# The tiers' folders share tests/helpers.py and tests/mlflow_server.py: `from helpers import ...` from any of them.
sys.path.insert(0, str(TESTS))
# tests/unit/test_tiers.py runs the guard below on a small suite of its own.
pytest_plugins = ["pytester"]
# The first read of platform.uname() runs `uname -p` (MLflow reads it on import): once here, before any test,
# so that no library's first read counts as a unit test starting a process.
platform.uname()


# `make test` runs the suite in pytest-xdist workers, one per core. Each worker takes its share of the cores,
# and hands it to the processes its tests start, so that two workers never run a thread per core each.
WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if WORKERS > 1 and "OMP_NUM_THREADS" not in os.environ:
    os.environ["OMP_NUM_THREADS"] = str(max(1, len(os.sched_getaffinity(0)) // WORKERS))
    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory):
    """A cache for the session's base models (the micro recipe ships, so most tests build nothing). The
    workers of one run share it: a model is built once, by the first worker to need it, while the others
    wait on its lock (prerl/models/build_cache.py)."""
    root = tmp_path_factory.getbasetemp()
    shared = root.parent if "PYTEST_XDIST_WORKER" in os.environ else root
    (shared / "prerl-cache").mkdir(exist_ok=True)
    return str(shared / "prerl-cache")


# ---- The tiers (CONTRIBUTING.md, "Tests"): a test's folder says what it may do. ----
# tests/unit/         the fast tier (`make test-fast`): no model loaded from disk, no MLflow store, no process;
# tests/integration/  in this process: models built, loaded or trained, MLflow stores, the trainer;
# tests/process/      processes: train.py and sweeps as commands, torchrun, the wheel, a server, a browser.
# Every test of the last two is marked `slow` (and `process`), so `-m "not slow"` is the fast tier too.
SLOW_TIERS = ("integration", "process")


def tier(item) -> str | None:
    """The tiers' folder a test lives in (None: somewhere else)."""
    path = Path(item.path).resolve()
    if TESTS not in path.parents:
        return None
    folder = path.relative_to(TESTS).parts[0]
    return folder if folder in ("unit", *SLOW_TIERS) else None


def pytest_collection_modifyitems(config, items):
    for item in items:
        if tier(item) in SLOW_TIERS:
            item.add_marker(pytest.mark.slow)
        if tier(item) == "process":
            item.add_marker(pytest.mark.process)


@pytest.fixture(autouse=True)
def _guard_fast_tests(request, monkeypatch):
    """The fast tier's safety net: in tests/unit/, loading a saved transformers model, opening an MLflow
    client or starting a process is an error that says where the test belongs; so is using the base models'
    cache, a test outside the tiers' folders, or one marked slow by hand."""
    where = tier(request.node)
    if where in SLOW_TIERS:
        yield
        return

    def fail(what, move_to):
        pytest.fail(
            f"{request.node.nodeid} {what}, which the fast tier (tests/unit/) does not: move it to {move_to} "
            "(CONTRIBUTING.md, 'Tests')",
            pytrace=False,
        )

    if where is None:
        fail("lives outside tests/unit, tests/integration and tests/process", "the folder of its tier")
    if request.node.get_closest_marker("slow") is not None:
        fail("is marked slow", "tests/integration/ or tests/process/")
    if "cache_dir" in request.fixturenames:
        fail("uses the base models' cache (cache_dir)", "tests/integration/")

    def refuse(what, move_to="tests/integration/"):
        def refused(*args, **kwargs):
            fail(what, move_to)

        return refused

    if "transformers" in sys.modules:
        transformers = sys.modules["transformers"]
        monkeypatch.setattr(
            transformers.PreTrainedModel,
            "from_pretrained",
            classmethod(refuse("loads a saved model (from_pretrained)")),
        )
    if "mlflow" in sys.modules:
        from mlflow.tracking import MlflowClient

        monkeypatch.setattr(MlflowClient, "__init__", refuse("opens an MLflow client"))
    monkeypatch.setattr(subprocess.Popen, "__init__", refuse("starts a process (subprocess)", "tests/process/"))
    yield
