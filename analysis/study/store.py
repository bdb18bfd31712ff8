"""A study's evidence read from its MLflow store (the mini study's; the real-model study reads exported
files, ``analysis.study.export``): the finished runs of its sweep, the base models' gradient alignment
(``analysis.alignment --mlflow`` runs, named ``alignment <model>``) and the wall time of both.
"""

from __future__ import annotations

import io
import json
import tempfile
from pathlib import Path
from typing import Optional

import numpy as np

from prerl.tracking.tracker import with_retry

from ..runs import RunRecord, experiment_runs, load_runs
from ..tables import TableOptions
from .cells import Study, infer_dsrl_steps

ALIGNMENT_RUNS = "attributes.run_name LIKE 'alignment %' and attributes.status = 'FINISHED'"


def client_for(uri: Optional[str]):
    """An MLflow client of ``uri``, else of $MLFLOW_TRACKING_URI, else of ./mlflow.db."""
    from mlflow.tracking import MlflowClient

    from prerl.config.schema import TrackingConfig
    from prerl.tracking.tracker import tracking_uri

    return MlflowClient(tracking_uri(TrackingConfig(uri=uri)))


def finished_sweep_runs(client, experiment: str, sweep: str) -> list:
    return experiment_runs(client, experiment, f"attributes.status = 'FINISHED' and tags.sweep = '{sweep}'")


def alignment_runs(client, experiment: str) -> list:
    """The experiment's finished alignment runs, oldest first."""
    return experiment_runs(client, experiment, ALIGNMENT_RUNS, order_by=["attributes.start_time ASC"])


def load_alignment(client, experiment: str, folder: Path) -> dict[str, dict]:
    """task -> the newest FINISHED ``alignment <model>`` run's alignment.json, tokens and plot (copied into
    ``folder`` as ``h_<task>_alignment.png``)."""
    found = {}
    for run in alignment_runs(client, experiment):
        task = run.data.params.get("model", "?")
        with tempfile.TemporaryDirectory() as tmp:
            local = Path(with_retry(client.download_artifacts, run.info.run_id, "alignment", tmp))
            tokens = np.load(io.BytesIO((local / "tokens.npz").read_bytes()))
            png = folder / f"h_{task}_alignment.png"
            if (local / "alignment.png").exists():
                folder.mkdir(parents=True, exist_ok=True)
                png.write_bytes((local / "alignment.png").read_bytes())
            found[task] = {
                "json": json.loads((local / "alignment.json").read_text()),
                "tokens": {k: tokens[k] for k in tokens.files},
                "png": png if png.exists() else None,
            }
    return found


def wall_time(client, experiment: str, sweep: str) -> dict[str, float]:
    """The finished training and alignment runs: their count, their summed durations (end − start) and
    logged training seconds, and the span from the first start to the last end (seconds)."""
    runs = finished_sweep_runs(client, experiment, sweep) + experiment_runs(client, experiment, ALIGNMENT_RUNS)
    spans = [(r.info.start_time, r.info.end_time) for r in runs if r.info.end_time]
    return {
        "runs": float(len(runs)),
        "summed": sum(e - s for s, e in spans) / 1000,
        "train": sum(r.data.metrics.get("cost/train_seconds_total", 0.0) for r in runs),
        "span": (max(e for _, e in spans) - min(s for s, _ in spans)) / 1000 if spans else 0.0,
    }


def read_study(
    client,
    experiment: str,
    sweep: str,
    folder: Path,
    run_command: str,
    dsrl_steps: Optional[int] = None,
    n_boot: int = 2000,
) -> Study:
    """The study's finished runs and alignment (its plots copied into ``folder``); DSRL's S is
    ``dsrl_steps``, else the NSR-RL control's warm-up. A one-line error when the runs cannot make one
    study (no runs: ``run_command`` makes them)."""
    runs: list[RunRecord] = load_runs(client, experiment, (sweep,))
    if not runs:
        raise SystemExit(
            f"no finished runs tagged sweep={sweep} in experiment {experiment!r}: run `{run_command}` first"
        )
    dsrl = dsrl_steps or infer_dsrl_steps(runs)
    if dsrl is None:
        raise SystemExit(
            "cannot tell DSRL's warm-up length from the runs (no single NSR-RL control): pass --dsrl-steps"
        )
    totals = {int(r.params.get("total_steps", 0)) for r in runs}
    if len(totals) != 1:
        raise SystemExit(f"the study's runs have different total_steps {sorted(totals)}: one experiment per preset")
    folder.mkdir(parents=True, exist_ok=True)
    return Study(runs, dsrl, totals.pop(), TableOptions(n_boot=n_boot), load_alignment(client, experiment, folder))
