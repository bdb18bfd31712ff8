"""The tiers (tests/conftest.py, CONTRIBUTING.md "Tests"): a test's folder marks it, and the fast tier's guard
stops a unit test that loads a saved model, opens an MLflow client, starts a process or uses the base
models' cache, saying where it belongs. Run on a small suite of its own, in this process, with this
checkout's conftest and settings."""

import shutil
from pathlib import Path

import mlflow.tracking  # noqa: F401 - imported before the inner run, which would otherwise import its own copy
import transformers  # noqa: F401 - likewise

ROOT = Path(__file__).resolve().parents[2]

UNIT = """
import subprocess

import pytest
import transformers
from mlflow.tracking import MlflowClient


def test_pure_maths():
    assert 1 + 1 == 2


def test_opens_a_store(tmp_path):
    MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")


def test_loads_a_saved_model(tmp_path):
    transformers.Qwen3ForCausalLM.from_pretrained(str(tmp_path))


def test_starts_a_process():
    subprocess.run(["true"])


@pytest.mark.slow
def test_marked_slow_by_hand():
    pass


def test_uses_the_base_models(cache_dir):
    pass
"""

MARKS = """
def test_marks(request):
    assert {m.name for m in request.node.iter_markers()} & {"slow", "process"} == set(MARKED)
"""


def suite(pytester):
    """This checkout's conftest and pytest settings, with a test file in each tier."""
    tests = pytester.path / "tests"
    (tests / "unit").mkdir(parents=True)
    (tests / "integration").mkdir()
    (tests / "process").mkdir()
    shutil.copy(ROOT / "tests" / "conftest.py", tests / "conftest.py")
    shutil.copy(ROOT / "pyproject.toml", pytester.path / "pyproject.toml")
    (tests / "unit" / "test_probe_unit.py").write_text(UNIT + "\nMARKED = ()\n" + MARKS)
    (tests / "integration" / "test_probe_integration.py").write_text("MARKED = ('slow',)\n" + MARKS)
    (tests / "process" / "test_probe_process.py").write_text("MARKED = ('slow', 'process')\n" + MARKS)
    (tests / "test_probe_outside.py").write_text("def test_outside():\n    pass\n")


def test_folders_mark_and_the_guard_refuses_what_the_fast_tier_must_not_do(pytester):
    suite(pytester)
    result = pytester.runpytest_inprocess("-rfE")
    result.assert_outcomes(passed=4, failed=3, errors=3)
    result.stdout.fnmatch_lines_random(
        [
            "*test_opens_a_store opens an MLflow client, which the fast tier (tests/unit/) does not: "
            "move it to tests/integration/*",
            "*test_loads_a_saved_model loads a saved model (from_pretrained)*move it to tests/integration/*",
            "*test_starts_a_process starts a process (subprocess)*move it to tests/process/*",
            "*test_marked_slow_by_hand is marked slow*move it to tests/integration/ or tests/process/*",
            "*test_uses_the_base_models uses the base models' cache (cache_dir)*move it to tests/integration/*",
            "*test_outside lives outside tests/unit, tests/integration and tests/process*",
        ]
    )


def test_not_slow_is_the_unit_folder(pytester):
    suite(pytester)
    result = pytester.runpytest_inprocess("-m", "not slow", "--collect-only")
    result.stdout.fnmatch_lines(["*7/10 tests collected (3 deselected)*"])
    result = pytester.runpytest_inprocess("-m", "process", "--collect-only")
    result.stdout.fnmatch_lines(["*test_probe_process.py::test_marks*", "*1/10 tests collected (9 deselected)*"])
