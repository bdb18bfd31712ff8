"""Layering, in fresh interpreters: every module of prerl imports on its own (no cycle), the config imports
nothing heavy, and scripts/import_graph.py prints the edges and cycles."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))
from import_graph import HEAVY, graph  # noqa: E402

# One fresh interpreter imports each module in turn after dropping every prerl module from
# sys.modules, so that each import starts from nothing of prerl (third-party packages stay cached:
# they cannot take part in a prerl cycle). A cycle fails as "partially initialized module".
ISOLATED_IMPORTS = """
import importlib, sys
failed = []
for name in sys.argv[1:]:
    for loaded in [m for m in sys.modules if m == "prerl" or m.startswith("prerl.")]:
        del sys.modules[loaded]
    try:
        importlib.import_module(name)
    except Exception as err:
        failed.append(f"{name}: {type(err).__name__}: {err}")
print("\\n".join(failed))
sys.exit(1 if failed else 0)
"""


def test_every_module_imports_in_isolation():
    modules, _, _ = graph()
    skip = (
        {"prerl.rollout.vllm"}
        if subprocess.run([sys.executable, "-c", "import vllm"], capture_output=True, cwd=ROOT).returncode
        else set()
    )  # needs vLLM installed
    names = [m for m in modules if m not in skip]
    assert len(names) > 40
    done = subprocess.run(
        [sys.executable, "-c", ISOLATED_IMPORTS, *names],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1"},
    )
    assert done.returncode == 0, done.stdout + done.stderr[-2000:]


def test_building_a_config_imports_nothing_heavy():
    code = (
        "import sys; from prerl.config.schema import TrainConfig; TrainConfig(); "
        "print(sorted({m.split('.')[0] for m in sys.modules} & set(sys.argv[1:])), "
        "sorted(m for m in sys.modules if m.startswith('prerl')))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, *HEAVY, "hydra", "omegaconf"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        check=True,
    )
    loaded = "['prerl', 'prerl.config', 'prerl.config.enums', 'prerl.config.schema', 'prerl.moved']"
    assert done.stdout.split("\n")[0] == f"[] {loaded}"


def test_the_graph_command_prints_edges_and_cycles():
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "import_graph.py")], capture_output=True, text=True, check=True
    )
    lines = done.stdout.splitlines()
    assert "config.schema -> config.enums" in lines and "cycles at import (module level): 0" in lines
    assert "  config.schema: none" in lines and "  algo.losses: torch" in lines
