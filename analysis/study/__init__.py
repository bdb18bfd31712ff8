"""Studies of the paper's claims as data, measurements and a document template, run from Python.

- ``spec.py``: what a study is (parts, presets with their seeds and sizes, claims, where its files go);
  ``mini.py`` and ``smollm2.py``: the mini study and the real-model study as data.
- ``claims.py``: the claims as data and the verdict rule; ``claim_measures.py``: one named function per
  measured quantity; ``quantities.py``: the intervals they are made of; ``cells.py``: runs by task and cell.
- ``jobs.py``: every training job and its ``config_hash`` before anything runs.
- ``orchestrate.py``: the plan, the parts' multiruns, the alignment, the diagnosis, the launch record.
- ``store.py``: a study's runs read from MLflow; ``export.py`` / ``restore.py``: finished runs as committed
  files and back.
- The documents: ``templates/`` (the prose), ``template.py`` (filling it), ``sections.py`` (the tables both
  show), ``mini_document.py`` (from the store), ``document.py`` + ``measures.py`` + ``mini_columns.py``
  (the real model's, from its files, beside the mini study's verdicts).

    python -m analysis.study run --study mini [--preset quick|smoke] [hydra/launcher=joblib ...]
    python -m analysis.study doc --study mini [--preset quick|smoke]
    python -m analysis.study run --study smollm2 [--preset quick|smoke] [--launcher "hydra/launcher=joblib"]
    python -m analysis.study doc --study smollm2 [--preset quick]
    python -m analysis.study claims --study mini
"""
