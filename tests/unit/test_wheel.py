"""The layout rule that lets analysis/ work both from a checkout and installed as prerl.analysis (setup.py):
it imports its own modules relatively (the wheel itself: tests/process/test_wheel_build.py)."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_analysis_imports_its_own_modules_relatively():
    """Installed, analysis/ is prerl.analysis (a top-level `analysis` would clash with other projects'), where
    `from analysis.x import y` fails; `from .x import y` works under both names."""
    found = []
    for path in sorted((ROOT / "analysis").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            else:
                continue
            found += [f"{path.relative_to(ROOT)}:{node.lineno} {n}" for n in names if n.split(".")[0] == "analysis"]
    assert not found, "analysis/ imports itself by its checkout name; make these relative: " + ", ".join(found)
