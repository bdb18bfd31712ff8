"""The flat layout's import paths (before prerl 0.2.0) fail in a fresh interpreter with one line that
names the new one (prerl/moved.py)."""

import subprocess
import sys

import pytest

from prerl.moved import MOVED


@pytest.mark.parametrize("old", ["prerl.losses", "prerl.algorithms.cispo", "prerl.mini.base_model"])
def test_an_old_module_path_fails_with_one_line_naming_the_new_one(old):
    """A module of a moved package is refused at its package, the first name Python imports."""
    parts = old.split(".")
    first = next(name for name in (".".join(parts[:n]) for n in range(2, len(parts) + 1)) if name in MOVED)
    done = subprocess.run([sys.executable, "-c", f"import {old}"], capture_output=True, text=True)
    last = done.stderr.strip().splitlines()[-1]
    assert done.returncode == 1
    assert last == f"ModuleNotFoundError: {first} moved to {MOVED[first]} (prerl's subpackages)"
