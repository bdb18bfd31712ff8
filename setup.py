"""The wheel's packages; everything else about prerl's build is in pyproject.toml.

A checkout keeps the Hydra configs (conf/, whose sweep/ is sweeps/) and the analysis code (analysis/) at
its top level, beside train.py. A prerl installed from its wheel has no checkout around it, so the wheel
carries both inside the package, mapped at build time (the repository keeps one copy of each):

- conf/ as prerl/conf, data that ``prerl.config.docs.CONF`` finds;
- analysis/ as the subpackage prerl.analysis (``prerl-ablation-table``), not as a top-level ``analysis``,
  a name other projects also install; analysis/ imports its own modules relatively, so the same files
  work as ``analysis`` in a checkout and as ``prerl.analysis`` installed (tests/unit/test_wheel.py and
  tests/process/test_wheel_build.py check both);
- hydra_plugins/prerl_optuna_sweeper, in Hydra's namespace for plug-ins (``hydra/sweeper=optuna``).

The package list is code because setuptools' ``find`` in pyproject.toml cannot place a folder under
another package's name.
"""

from setuptools import find_namespace_packages, setup

# installed package -> folder of the checkout
MAPPED = {"prerl.analysis": "analysis", "prerl.conf": "conf"}


def packages_under(package: str, folder: str) -> list[str]:
    """``package`` and one for each folder below ``folder``; a folder of data only (a config group, the
    templates) is listed too, as prerl's own data folders are, or setuptools warns that it is missing."""
    return [package, *(f"{package}.{sub}" for sub in find_namespace_packages(folder))]


setup(
    packages=[
        *find_namespace_packages(include=["prerl", "prerl.*"]),
        *(name for package, folder in MAPPED.items() for name in packages_under(package, folder)),
        "hydra_plugins.prerl_optuna_sweeper",
    ],
    package_dir=MAPPED,
)
