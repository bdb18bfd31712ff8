"""Studies of the paper's claims as data, measurements and a document template, run from Python.

- ``spec.py``: what a study is (parts, presets with their seeds and sizes, claims, where its files go);
  ``smollm2.py``: the real-model study as data.
- ``jobs.py``: every training job and its ``config_hash`` before anything runs.
- ``orchestrate.py``: the plan, the parts' multiruns, the alignment, the diagnosis, the launch record.
- ``export.py``: finished MLflow runs as committed files; ``mini_columns.py``: the mini study's verdicts.
- ``measures.py``: what is measured beyond the claims; ``document.py`` + ``templates/``: the document.

    python -m analysis.study run --study smollm2 [--preset quick|smoke] [--launcher "hydra/launcher=joblib"]
    python -m analysis.study doc --study smollm2 [--preset quick]
"""
