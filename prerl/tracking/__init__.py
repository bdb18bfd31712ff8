"""MLflow: one run per job, its tags and fingerprint, sweeps' parent runs, the finished-run check, the cost counters."""

from prerl.moved import attribute_moved

__getattr__ = attribute_moved("prerl.tracking", "prerl.tracking.tracker")
