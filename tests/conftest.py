import os
import sys
from pathlib import Path

import pytest
import torch

# The tiers' folders share tests/helpers.py and tests/mlflow_server.py: `from helpers import ...` from any of them.
sys.path.insert(0, str(Path(__file__).resolve().parent))

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
if (
    os.environ.get("PRERL_DETERMINISTIC") == "1"
):  # PRERL_DETERMINISTIC=1 make test: this process only, not the runs it starts
    torch.use_deterministic_algorithms(True)


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory):
    """A cache for the session's base models (the micro recipe ships, so most tests build nothing)."""
    return str(tmp_path_factory.mktemp("prerl-cache"))


# ---- Which tests are `slow` (CONTRIBUTING.md, "Tests"). `make test-fast` runs `-m "not slow"`. ----
# Besides an explicit `@pytest.mark.slow`, a test is marked slow here when
# 1. it uses the fixture that stands for base models, `cache_dir` (built or loaded there), directly or through
#    another fixture;
# 2. it lives in a folder of process-level tests;
# 3. its code, its fixtures' code, or a function they call from their module's globals (two calls deep) starts
#    a process (`subprocess`, `Popen`, `sys.executable`: each new Python pays torch's import) or opens an
#    MLflow store (`mlflow`, `MlflowClient`, `Tracker`, a "sqlite:" URI: the store's schema migration).
# A test none of these catch that still loads a saved model or opens an MLflow client fails right there
# (`_guard_fast_tests`), so a slow test cannot join the fast set unnoticed: mark it `@pytest.mark.slow`.
MODEL_FIXTURES = {"cache_dir"}
PROCESS_FOLDERS = ("process/distributed", "process/vllm_engine")
SLOW_NAMES = {"subprocess", "Popen", "executable", "mlflow", "MlflowClient", "Tracker"}
SLOW_STRINGS = ("sqlite:",)
TESTS = Path(__file__).resolve().parent


def _refs(code, seen: set) -> tuple[set[str], list[str]]:
    """Global names and string constants of a code object and of the functions defined inside it."""
    if code in seen:
        return set(), []
    seen.add(code)
    names, strings = set(code.co_names), [c for c in code.co_consts if isinstance(c, str)]
    for const in code.co_consts:
        if hasattr(const, "co_names"):
            inner_names, inner_strings = _refs(const, seen)
            names |= inner_names
            strings += inner_strings
    return names, strings


def _reaches_slow_code(functions, depth: int = 2) -> bool:
    """Whether any of ``functions``, or a function they call from their module's globals (``depth`` calls
    deep), names a process or MLflow API."""
    seen: set = set()
    todo = [(f, depth) for f in functions if hasattr(f, "__code__")]
    while todo:
        fn, left = todo.pop()
        names, strings = _refs(fn.__code__, seen)
        if names & SLOW_NAMES or any(marker in s for s in strings for marker in SLOW_STRINGS):
            return True
        if left:
            called = [fn.__globals__.get(n) for n in names]
            todo += [(g, left - 1) for g in called if hasattr(g, "__code__") and hasattr(g, "__globals__")]
    return False


def _is_slow(item) -> bool:
    if MODEL_FIXTURES & set(getattr(item, "fixturenames", ())):
        return True
    if any(TESTS / folder in Path(item.path).resolve().parents for folder in PROCESS_FOLDERS):
        return True
    fixtures = getattr(item, "_fixtureinfo", None)
    fixture_functions = [d.func for defs in fixtures.name2fixturedefs.values() for d in defs] if fixtures else []
    ours = [
        f
        for f in fixture_functions
        if getattr(f, "__name__", "") != "_guard_fast_tests"  # (it names mlflow)
        and hasattr(f, "__code__")
        and f.__code__.co_filename.startswith(str(TESTS))
    ]
    return _reaches_slow_code([getattr(item, "function", None), *ours])


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.get_closest_marker("slow") is None and _is_slow(item):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(autouse=True)
def _guard_fast_tests(request, monkeypatch):
    """In a test not marked slow, loading a saved transformers model or opening an MLflow client is an error
    that says what to do."""
    if request.node.get_closest_marker("slow") is not None:
        yield
        return

    def refuse(what):
        def refused(*args, **kwargs):
            pytest.fail(
                f"{request.node.nodeid} {what} but is not marked slow: add @pytest.mark.slow "
                "(CONTRIBUTING.md, 'Tests')",
                pytrace=False,
            )

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
    yield
