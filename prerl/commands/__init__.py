"""The command lines: ``train.py`` and ``evaluate.py`` at the repository's root call these modules, and an
installed prerl runs them as ``prerl-train`` and ``prerl-evaluate`` (pyproject.toml, ``[project.scripts]``)."""
