"""prerl's wheel: what it carries, its console scripts, and the layout rules that let conf/ and analysis/ work
both from a checkout and installed (setup.py). `make wheel-check` (scripts/wheel_check.sh, run by CI) installs
the wheel with its dependencies in a fresh venv and trains with it; here the wheel is built, read, and installed
without dependencies into a folder of its own, where this environment's packages serve it."""

import ast
import configparser
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from prerl.tracking import run_info

ROOT = Path(__file__).resolve().parents[2]

SCRIPTS = {
    "prerl-train": "prerl.commands.train:main",
    "prerl-evaluate": "prerl.commands.evaluate:main",
    "prerl-ablation-table": "prerl.analysis.ablation_table:cli",
}


def test_an_installed_prerl_lends_no_commit_of_the_repository_around_its_venv(tmp_path, monkeypatch):
    """Installed from the wheel, prerl's ROOT is site-packages; a venv inside some project's repository
    must not tag prerl's runs with that project's commit."""
    project = tmp_path / "project"
    site = project / ".venv" / "lib" / "site-packages"
    site.mkdir(parents=True)
    git = ["git", "-C", str(project), "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run([*git, "init", "-q"], check=True)
    (project / "notes.txt").write_text("a project that keeps its venv inside\n")
    subprocess.run([*git, "add", "notes.txt"], check=True)
    subprocess.run([*git, "commit", "-qm", "notes"], check=True)
    monkeypatch.setattr(run_info, "ROOT", site)
    tags = run_info.source_tags()
    assert not {"mlflow.source.git.commit", "git_dirty", "mlflow.source.git.branch"} & set(tags), tags
    assert tags["mlflow.source.name"] == "train.py"


def files_under(folder: Path, suffixes: tuple[str, ...] = ()) -> set[str]:
    """Paths of the files below ``folder`` (symlinked folders followed, as the build does), relative to it."""
    found = set()
    for parent, dirs, files in os.walk(folder, followlinks=True):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        found |= {Path(parent, f).relative_to(folder).as_posix() for f in files if not suffixes or f.endswith(suffixes)}
    return found


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel built by pip (setuptools, in an isolated environment) from a copy of the checkout."""
    work = tmp_path_factory.mktemp("wheel")
    subprocess.run(["bash", str(ROOT / "scripts" / "checkout_copy.sh"), str(work / "src")], check=True)
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "--wheel-dir", str(work), str(work / "src")],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (built,) = work.glob("prerl-*.whl")
    return built


def test_the_wheel_carries_the_configs_analysis_and_the_sweeper_under_prerls_names(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    top = {n.split("/")[0] for n in names}
    assert {t for t in top if not t.endswith(".dist-info")} == {"prerl", "hydra_plugins"}  # no bare analysis/conf
    conf = {n.removeprefix("prerl/conf/") for n in names if n.startswith("prerl/conf/")}
    assert conf == files_under(ROOT / "conf", (".yaml",)) and "sweep/warmup.yaml" in conf  # conf/sweep is sweeps/
    analysis = {n.removeprefix("prerl/analysis/") for n in names if n.startswith("prerl/analysis/")}
    templates = {f"study/templates/{t}" for t in files_under(ROOT / "analysis" / "study" / "templates")}
    assert templates and analysis == files_under(ROOT / "analysis", (".py",)) | templates  # every study's template
    assert "hydra_plugins/prerl_optuna_sweeper/optuna_sweeper.py" in names
    assert "hydra_plugins/__init__.py" not in names  # Hydra's namespace for plug-ins, shared with other packages


def test_the_wheels_console_scripts_name_functions_it_carries(wheel):
    archive = zipfile.ZipFile(wheel)
    (entry_points,) = [n for n in archive.namelist() if n.endswith(".dist-info/entry_points.txt")]
    parser = configparser.ConfigParser()
    parser.read_string(archive.read(entry_points).decode())
    assert dict(parser["console_scripts"]) == SCRIPTS
    for target in SCRIPTS.values():
        module, function = target.split(":")
        source = archive.read(module.replace(".", "/") + ".py").decode()
        defined = {n.name for n in ast.parse(source).body if isinstance(n, ast.FunctionDef)}
        assert function in defined, f"{target}: no function {function} in the wheel's {module}"


def run_installed(site: Path, cwd: Path, code: str) -> str:
    """``code`` in a Python whose prerl is the wheel's, installed in ``site``: run from ``cwd``, outside the
    checkout and with no PYTHONPATH but ``site`` (this environment's other packages serve as dependencies)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"PYTHONPATH": str(site)}
    done = subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


def test_installed_the_commands_run_from_the_packaged_configs_outside_the_checkout(wheel, tmp_path):
    site, cwd = tmp_path / "site", tmp_path / "elsewhere"
    cwd.mkdir()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-index",
            "--target",
            str(site),
            str(wheel),
        ],
        check=True,
        timeout=300,
    )
    where = run_installed(
        site,
        cwd,
        "import importlib\n"
        "from prerl.config import docs as config_docs\n"
        f"for target in {list(SCRIPTS.values())!r}:\n"
        "    module, function = target.split(':')\n"
        "    loaded = importlib.import_module(module)\n"
        "    assert callable(getattr(loaded, function)), target\n"
        "    print(loaded.__file__)\n"
        "print(config_docs.CONF)\n",
    ).split()
    assert all(Path(p).is_relative_to(site) for p in where), where  # the wheel's modules, not the checkout's
    assert where[-1] == str((site / "prerl" / "conf").resolve())
    for script in ("prerl-train", "prerl-evaluate"):  # what the console script runs, by its name
        module, function = SCRIPTS[script].split(":")
        shown = run_installed(
            site, cwd, f"import sys; sys.argv = [{script!r}, '--help']\nfrom {module} import {function}; {function}()"
        )
        assert "eval.samples_per_prompt" in shown and "warmup_steps" in shown, shown[-2000:]
    assert not list(cwd.iterdir())  # --help writes nothing
