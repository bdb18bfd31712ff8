"""MLflow logging: one run per training job, parameters flattened from the resolved config.

Metrics go through ``MlflowClient.log_batch``: one round trip per step instead of one per metric, which
is what a step's logging costs over HTTP (``benchmarks/bench_mlflow.py logging``). The tracking URI
defaults to ``$MLFLOW_TRACKING_URI`` or ``sqlite:///<cwd>/mlflow.db`` so that ``mlflow ui`` in the project root sees every run.

A store that cannot be reached at start-up fails the run within seconds, naming the URI. A tracking
server that goes away mid-run does not stop training: each step's metrics and artifacts wait in a
queue, mirrored to ``<output_dir>/mlflow_pending.jsonl``, and are sent in order once the server answers
again. At the end the run waits ``tracking.outage_wait_s`` for it; if it is still gone the run fails
naming the steps that are not recorded, and relaunching the same command (a resume) sends them.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import random
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import mlflow
from mlflow.entities import Metric, Param
from mlflow.tracking import MlflowClient

from prerl.config.schema import TrackingConfig
from prerl.tracking import policy_model, run_info

log = logging.getLogger(__name__)

DEFAULT_DB = "mlflow.db"


def tracking_uri(cfg: TrackingConfig) -> str:
    return cfg.uri or os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path.cwd() / DEFAULT_DB}"


def flatten(tree: Any, prefix: str = "") -> dict[str, str]:
    """``{"algorithm": {"kl": {"coef": 0.1}}}`` -> ``{"algorithm.kl.coef": "0.1"}``."""
    if isinstance(tree, dict):
        out: dict[str, str] = {}
        for key, value in tree.items():
            out.update(flatten(value, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: str(tree)[:6000]}


@contextmanager
def sqlite_creation_lock(uri: str):
    """Serialise the first connection to a SQLite store: MLflow creates and migrates the schema then,
    and parallel jobs racing to do that fail (alembic "expected to match one row")."""
    if not uri.startswith("sqlite:///"):
        yield
        return
    lock_path = Path(uri[len("sqlite:///") :]).with_suffix(".lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def with_retry(call, *args, attempts: int = 30, transient: tuple[str, ...] = ("locked", "busy"), **kwargs):
    """Call an MLflow client method, retrying while another process holds the SQLite lock (or while an
    error whose text contains one of ``transient`` says a retry can succeed)."""
    for attempt in range(attempts):
        try:
            return call(*args, **kwargs)
        except Exception as err:  # MLflow wraps SQLAlchemy's OperationalError variously
            message = str(err).lower()
            if not any(word in message for word in transient) or attempt == attempts - 1:
                raise
            time.sleep(min(0.05 * 2**attempt, 2.0) * (0.5 + random.random()))


@contextmanager
def http_patience(retries: int, timeout_s: int):
    """MLflow's HTTP client retries a dead server for minutes by default (7 retries with backoff, 120 s
    timeouts); it reads these variables on every request, so a call can ask for less patience."""
    wanted = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": str(retries), "MLFLOW_HTTP_REQUEST_TIMEOUT": str(timeout_s)}
    saved = {k: os.environ.get(k) for k in wanted}
    os.environ.update(wanted)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def is_outage(err: Exception) -> bool:
    """A request that never got an answer (refused, timed out, 5xx after retries), as opposed to a
    request the server rejected (a bad value), which must not be retried forever."""
    return "API request to" in str(err) and "failed with" in str(err)


def ensure_experiment(client: MlflowClient, name: str) -> str:
    """The experiment's id, created (or marked) as a model-training experiment with a description."""
    experiment = with_retry(client.get_experiment_by_name, name)
    if experiment is None:
        try:
            return with_retry(
                client.create_experiment,
                name,
                tags={
                    run_info.EXPERIMENT_KIND_TAG: run_info.EXPERIMENT_KIND,
                    run_info.DESCRIPTION_TAG: run_info.experiment_description(name),
                },
            )
        except Exception:
            experiment = with_retry(client.get_experiment_by_name, name)
            if experiment is None:
                raise
    if experiment.tags.get(run_info.EXPERIMENT_KIND_TAG) != run_info.EXPERIMENT_KIND:  # older stores
        with_retry(
            client.set_experiment_tag, experiment.experiment_id, run_info.EXPERIMENT_KIND_TAG, run_info.EXPERIMENT_KIND
        )
        if run_info.DESCRIPTION_TAG not in experiment.tags:
            with_retry(
                client.set_experiment_tag,
                experiment.experiment_id,
                run_info.DESCRIPTION_TAG,
                run_info.experiment_description(name),
            )
    return experiment.experiment_id


class Outbox:
    """What the run has logged but the store has not confirmed, oldest first. Each item is a JSON
    record (metrics of a step, a JSON artifact, a folder of artifacts, the policy as a model, the final
    status), so the queue
    survives the process in ``path`` and a resumed run sends what a killed one could not."""

    RETRY_S = (2.0, 60.0)  # wait between attempts while the server is away: doubles from 2 s up to 60 s

    def __init__(self, client: MlflowClient, run_id: str, path: Path | None):
        self.client, self.run_id, self.path = client, run_id, path
        self.items: list[dict] = []
        self.failures, self.next_attempt = 0, 0.0
        self.outage_since: float | None = None
        if path is not None and path.exists():
            self.items = [
                item for item in map(json.loads, path.read_text().splitlines()) if item.get("run_id") == run_id
            ]

    def put(self, item: dict) -> None:
        self.items.append({"run_id": self.run_id, **item})

    def send(self, item: dict) -> None:
        kind, run_id = item["kind"], self.run_id
        if kind == "metrics":
            batch = [Metric(k, float(v), item["time"], item["step"]) for k, v in item["metrics"].items()]
            for i in range(0, len(batch), 1000):
                with_retry(self.client.log_batch, run_id, metrics=batch[i : i + 1000])
        elif kind == "dict":
            with_retry(self.client.log_dict, run_id, item["data"], item["artifact"])
        elif kind == "table":
            with_retry(self.client.log_table, run_id, data=item["data"], artifact_file=item["artifact"])
        elif kind == "artifacts":
            with_retry(self.client.log_artifacts, run_id, item["local_dir"], item["artifact"])
        elif kind == "model":
            with_retry(
                policy_model.log_policy_model, self.client, run_id, item["local_dir"], item["step"], item["artifact"]
            )
        elif kind == "status":
            with_retry(self.client.set_terminated, run_id, status=item["status"])
        else:
            raise ValueError(f"unknown outbox item {kind!r}")

    def flush(self, force: bool = False) -> bool:
        """Send what is queued, in order, stopping at the first request the server does not answer.
        Returns whether the queue is empty. Between failed attempts it waits (``force`` tries anyway)."""
        if not self.items or (not force and time.monotonic() < self.next_attempt):
            return not self.items
        sent = 0
        try:
            with http_patience(retries=0, timeout_s=10):
                for item in self.items:
                    self.send(item)
                    sent += 1
        except Exception as err:
            if not is_outage(err):
                raise
            self.failures += 1
            self.next_attempt = time.monotonic() + min(self.RETRY_S[0] * 2 ** (self.failures - 1), self.RETRY_S[1])
            if self.outage_since is None:
                self.outage_since = time.monotonic()
                log.warning(
                    "MLflow store unreachable (%s); training continues, logging is queued in %s",
                    str(err)[:200],
                    self.path,
                )
        finally:
            del self.items[:sent]
            self.save()
        if not self.items and self.outage_since is not None:
            log.warning("MLflow store back after %.0f s: queued logging sent", time.monotonic() - self.outage_since)
            self.outage_since, self.failures = None, 0
        return not self.items

    def save(self) -> None:
        """Mirror the queue to disk (atomically); no file when nothing waits."""
        if self.path is None:
            return
        if not self.items:
            self.path.unlink(missing_ok=True)
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text("".join(json.dumps(item) + "\n" for item in self.items))
        os.replace(tmp, self.path)

    def describe(self) -> str:
        steps = sorted(item["step"] for item in self.items if item["kind"] == "metrics")
        others = [item.get("artifact") or item["kind"] for item in self.items if item["kind"] != "metrics"]
        parts = [f"metrics of steps {steps[0]}..{steps[-1]} ({len(steps)} steps)"] if steps else []
        if others:
            parts.append(
                f"{len(others)} other records ({', '.join(map(str, others[:5]))}{', ...' if len(others) > 5 else ''})"
            )
        return "; ".join(parts) or "nothing"


class Tracker:
    """One MLflow run. Fails at start-up when the store is unreachable, rather than losing metrics; later
    outages queue what the run logs (``Outbox``) and never drop it."""

    PENDING = "mlflow_pending.jsonl"

    def __init__(self, cfg: TrackingConfig):
        self.cfg = cfg
        self.uri = tracking_uri(cfg)
        self.run_id: str | None = None
        self.outbox: Outbox | None = None
        self.monitor: Any = None  # MLflow's SystemMetricsMonitor when tracking.system_metrics
        self.logged_through = -1  # steps up to here are already in the run (set when resuming)
        if cfg.system_metrics:
            try:
                import psutil  # noqa: F401 - MLflow's system metrics read the machine through it
            except ImportError as err:
                raise RuntimeError(
                    "tracking.system_metrics=true needs psutil: pip install 'prerl[system-metrics]'"
                ) from err
        try:
            with sqlite_creation_lock(self.uri), http_patience(retries=0, timeout_s=5):
                mlflow.set_tracking_uri(self.uri)
                self.client = MlflowClient(self.uri)
                with_retry(self.client.search_experiments, max_results=1)
                with_retry(mlflow.search_experiments, max_results=1)  # the fluent API's store, too
        except Exception as err:
            raise RuntimeError(
                f"MLflow tracking store {self.uri} is unreachable: {str(err)[:300]}. Start the "
                "server (make mlflow-server), fix tracking.uri or MLFLOW_TRACKING_URI, or unset "
                "both to use ./mlflow.db"
            ) from err

    def start(self, config: dict, tags: dict[str, str], run_id: str | None = None) -> str | None:
        """Open a new run, or re-open ``run_id`` to continue it after the last step it holds; the run's id
        (``None`` from a ``NullTracker``)."""
        pending = Path(config["output_dir"]) / self.PENDING if config.get("output_dir") else None
        if run_id is not None:
            self.run_id = run_id
            self.outbox = Outbox(self.client, run_id, pending)
            if self.outbox.items:
                log.info("sending what the interrupted run could not log: %s", self.outbox.describe())
                self.outbox.flush(force=True)  # before reading how far the run got
            with_retry(self.client.update_run, run_id, status="RUNNING")
            history = with_retry(self.client.get_metric_history, run_id, "time/step_s")
            self.logged_through = max((m.step for m in history), default=0)
            self._start_system_metrics(resume=True)
            return run_id
        experiment_id = ensure_experiment(self.client, self.cfg.experiment)
        with_retry(mlflow.set_experiment, experiment_id=experiment_id)  # the fluent API (analysis helpers) agrees
        name, described = run_info.identity(config, tags)
        run = with_retry(
            self.client.create_run,
            experiment_id,
            run_name=self.cfg.run_name or name,
            tags={**described, **self.cfg.tags, **tags},
        )
        self.run_id = run.info.run_id
        self.outbox = Outbox(self.client, self.run_id, pending)
        items = list(flatten(config).items())
        for i in range(0, len(items), 100):  # MLflow caps a batch at 100 params
            with_retry(self.client.log_batch, self.run_id, params=[Param(k, v) for k, v in items[i : i + 100]])
        with_retry(self.client.log_dict, self.run_id, config, "config.json")
        self._start_system_metrics(resume=False)
        return self.run_id

    def _start_system_metrics(self, resume: bool) -> None:
        if not self.cfg.system_metrics:
            return
        from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

        self.monitor = SystemMetricsMonitor(
            self.run_id,
            sampling_interval=self.cfg.system_metrics_interval_s,
            resume_logging=resume,
            tracking_uri=self.uri,
        )
        self.monitor.start()

    def log_datasets(self, inputs: list) -> None:
        """The run's datasets as MLflow inputs (the UI's Dataset column); see ``run_info.dataset_inputs``."""
        if inputs:
            # MLflow's store looks a dataset up, then inserts it: parallel jobs logging the same dataset
            # race, and the loser's insert fails on the unique key. Its retry finds the row and links it.
            racing = ("locked", "busy", "unique constraint")
            with_retry(self.client.log_inputs, self.run_id, datasets=inputs, transient=racing)

    @property
    def box(self) -> Outbox:
        """The outbox of the started run (``start`` creates it)."""
        assert self.outbox is not None, "Tracker.start() first"
        return self.outbox

    def queue(self, item: dict) -> None:
        self.box.put(item)
        self.box.flush()

    def log(self, metrics: dict[str, float], step: int) -> None:
        if step <= self.logged_through:  # replayed after a resume: the run has these values already
            return
        self.queue(
            {
                "kind": "metrics",
                "step": step,
                "time": int(time.time() * 1000),
                "metrics": {k: float(v) for k, v in metrics.items()},
            }
        )

    def log_dict(self, data: dict, artifact: str) -> None:
        self.queue({"kind": "dict", "data": data, "artifact": artifact})

    def log_table(self, rows: dict[str, list], artifact: str) -> None:
        self.queue({"kind": "table", "data": rows, "artifact": artifact})

    def log_policy(self, folder: Path, step: int, name: str = policy_model.NAME) -> None:
        """A saved policy folder (weights, config, tokenizer) as the run's MLflow model ``name``, with the
        metrics of ``step`` (``prerl.tracking.policy_model``): the Models column, ``runs:/<run_id>/policy``."""
        self.queue({"kind": "model", "local_dir": str(Path(folder).resolve()), "artifact": name, "step": step})

    def finish(self, status: str = "FINISHED") -> None:
        if self.run_id is None:
            return
        if self.monitor is not None:
            self.monitor.finish()
        self.box.put({"kind": "status", "status": status})
        deadline = time.monotonic() + (self.cfg.outage_wait_s if status == "FINISHED" else 0)
        while not self.box.flush(force=True) and time.monotonic() < deadline:
            time.sleep(min(5.0, max(0.0, deadline - time.monotonic())))
        if self.box.items:
            message = (
                f"MLflow store {self.uri} unreachable at the end of run {self.run_id}: not recorded "
                f"there: {self.box.describe()}. They are kept in {self.box.path}; relaunch the "
                "same command (same output folder) to send them."
            )
            if status != "FINISHED":  # another error is on its way up: do not hide it
                log.error(message)
                return
            raise RuntimeError(message)


class NullTracker(Tracker):
    """Stands in for ``Tracker`` on ranks other than 0 (only rank 0 writes to MLflow): no store, no run,
    and what is logged is dropped. Every logging method of ``Tracker`` funnels into ``queue``, so this
    class overrides only the points that reach the store."""

    def __init__(self) -> None:  # no store is contacted
        self.run_id, self.outbox, self.monitor, self.logged_through = None, None, None, -1

    def start(self, config: dict, tags: dict[str, str], run_id: str | None = None) -> None:
        return None

    def log_datasets(self, inputs: list) -> None:
        pass

    def queue(self, item: dict) -> None:
        pass
