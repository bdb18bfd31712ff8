"""What the flat layout wrote still works after the move to subpackages (prerl 0.2.0), without loading a
model: the old checkpoint (tests/fixtures/layout_v1/, written by commit 6383784) names no prerl module, and
an old module or plug-in path is answered in one line that names the new one. The checkpoint restored and
the config hashes: tests/integration/test_layout_compat_restore.py; old import paths in a fresh
interpreter: tests/process/test_layout_compat_old_paths.py."""

import io
import pickletools
import zipfile
from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "layout_v1"

CHECKPOINT = FIXTURES / "smoke_step_000001.pt"


def pickled_globals(path: Path) -> set[str]:
    """The classes and functions a torch checkpoint's pickle names (each one is imported to load it)."""
    archive = zipfile.ZipFile(path)
    pickle = next(n for n in archive.namelist() if n.endswith("data.pkl"))
    ops = pickletools.genops(io.BytesIO(archive.read(pickle)))
    return {str(arg) for op, arg, _ in ops if op.name in ("GLOBAL", "STACK_GLOBAL") and arg}


def test_an_old_checkpoint_names_no_prerl_module():
    """So no move of a prerl module can break loading it."""
    named = pickled_globals(CHECKPOINT)
    assert named and not [n for n in named if n.split(".")[0].split(" ")[0] == "prerl"]


def test_an_old_name_of_a_package_that_was_a_module_names_its_new_module():
    with pytest.raises(ImportError, match=r"^prerl.config.TrainConfig moved to prerl.config.schema.TrainConfig"):
        from prerl.config import TrainConfig  # noqa: F401
    with pytest.raises(ImportError, match=r"^prerl.data.load_splits moved to prerl.data.splits.load_splits"):
        from prerl.data import load_splits  # noqa: F401
    from prerl.data import word_problems  # a submodule still imports

    assert word_problems.__name__ == "prerl.data.word_problems"


def test_an_old_module_imported_from_prerl_names_its_new_path():
    """``from prerl import config_docs`` once answered only "cannot import name 'config_docs'"."""
    with pytest.raises(ImportError, match=r"^prerl.config_docs moved to prerl.config.docs"):
        from prerl import config_docs  # noqa: F401
    with pytest.raises(AttributeError, match="no attribute 'no_such_module'"):
        import prerl

        prerl.no_such_module  # noqa: B018
    from prerl import config  # a package of the new layout still imports

    assert config.__name__ == "prerl.config"


def test_a_plugin_listed_under_its_old_path_is_refused_in_one_line():
    from prerl.algo.registry import load_plugins

    with pytest.raises(ValueError, match=r"prerl.algorithms moved to prerl.algo.plugins") as err:
        load_plugins(["prerl.algorithms.cispo"])
    assert "\n" not in str(err.value)
