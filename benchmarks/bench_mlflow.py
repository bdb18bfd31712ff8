"""MLflow over HTTP: what logging a step costs, and what a run does when the tracking server goes away.

    python benchmarks/bench_mlflow.py logging            # seconds per step: synchronous, MLflow async, prerl's queue
    python benchmarks/bench_mlflow.py outage             # the mini default; the server stopped 30 s mid-run
    python benchmarks/bench_mlflow.py outage --overrides experiment=smoke total_steps=40 --stop-after 10

Both start a real ``mlflow server`` (as ``make mlflow-server``) on a free localhost port and print what
they measured.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

from mlflow_server import MlflowServer  # noqa: E402


def bench_logging(args) -> None:
    """One step's worth of metrics (``--metrics`` keys) per call, ``--steps`` calls, three ways."""
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    from prerl.tracking.tracker import Outbox

    with tempfile.TemporaryDirectory() as folder:
        server = MlflowServer(Path(folder)).start()
        try:
            client = MlflowClient(server.uri)
            experiment = client.create_experiment("bench")
            keys = [f"train/m{i:02d}" for i in range(args.metrics)]

            def batch(step):
                return [Metric(k, float(step), int(time.time() * 1000), step) for k in keys]

            results = {}
            for mode in ("synchronous log_batch", "log_batch(synchronous=False)", "prerl Outbox (synchronous, queued)"):
                run_id = client.create_run(experiment).info.run_id
                outbox = Outbox(client, run_id, Path(folder) / f"pending-{len(results)}.jsonl")
                per_step, futures = [], []
                start = time.perf_counter()
                for step in range(args.steps):
                    t = time.perf_counter()
                    if mode.startswith("synchronous"):
                        client.log_batch(run_id, metrics=batch(step))
                    elif mode.startswith("log_batch"):
                        futures.append(client.log_batch(run_id, metrics=batch(step), synchronous=False))
                    else:
                        outbox.put(
                            {
                                "kind": "metrics",
                                "step": step,
                                "time": int(time.time() * 1000),
                                "metrics": {k: float(step) for k in keys},
                            }
                        )
                        outbox.flush()
                    per_step.append(time.perf_counter() - t)
                for future in futures:
                    future.wait()
                total = time.perf_counter() - start
                stored = len(client.get_metric_history(run_id, keys[0]))
                results[mode] = (statistics.median(per_step) * 1000, max(per_step) * 1000, total, stored)
            print(f"\n{args.steps} steps x {args.metrics} metrics to {server.uri} (mlflow server, SQLite, 1 worker)\n")
            print("| mode | median ms per step (caller) | max ms | total s (all stored) | values stored |")
            print("|---|---|---|---|---|")
            for mode, (median, worst, total, stored) in results.items():
                print(f"| {mode} | {median:.1f} | {worst:.1f} | {total:.2f} | {stored}/{args.steps} |")
        finally:
            server.stop()


def bench_outage(args) -> None:
    """Train, stop the server after step ``--stop-after`` for ``--down-s`` seconds, start it again."""
    from mlflow.tracking import MlflowClient

    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        server = MlflowServer(folder / "server").start()
        out = folder / "run"
        cmd = [
            sys.executable,
            str(ROOT / "train.py"),
            *args.overrides,
            f"output_dir={out}",
            f"hydra.run.dir={out}",
            f"tracking.uri={server.uri}",
        ]
        print("$", " ".join(cmd))
        started = time.monotonic()
        proc = subprocess.Popen(cmd, cwd=folder, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        steps_at: dict[int, float] = {}

        def read() -> None:  # timestamps each line as it is printed, whatever the main thread is doing
            for line in proc.stdout:
                now = time.monotonic()
                done = re.search(r"step (\d+)/(\d+)", line)
                if done:
                    steps_at[int(done.group(1))] = now
                if "unreachable" in line or "back after" in line or "MLflow" in line:
                    print(f"  [{now - started:6.1f} s] {line.rstrip()[:240]}", flush=True)

        reader = threading.Thread(target=read)
        reader.start()
        while args.stop_after not in steps_at:
            if proc.poll() is not None:
                raise SystemExit(f"the run ended (exit {proc.returncode}) before step {args.stop_after}")
            time.sleep(0.1)
        server.stop()
        stopped = time.monotonic()
        print(f"  [{stopped - started:6.1f} s] server stopped after step {args.stop_after}", flush=True)
        time.sleep(args.down_s)
        server.start()
        back = time.monotonic()
        print(f"  [{back - started:6.1f} s] server answering again, {back - stopped:.1f} s after the stop", flush=True)
        proc.wait()
        reader.join()
        ended = time.monotonic()
        during = sorted(s for s, t in steps_at.items() if stopped <= t <= back)
        client = MlflowClient(server.uri)
        (run,) = client.search_runs([client.get_experiment_by_name(args.experiment).experiment_id])
        history = {
            key: [m.step for m in client.get_metric_history(run.info.run_id, key)]
            for key in ("train/accuracy", "time/step_s")
        }
        step_s = {m.step: m.value for m in client.get_metric_history(run.info.run_id, "time/step_s")}
        outside = [v for s, v in step_s.items() if s not in during]
        inside = [step_s[s] for s in during if s in step_s]
        total = max(steps_at) if steps_at else 0
        print(f"\nexit code {proc.returncode}, run {run.info.run_id} {run.info.status}, wall {ended - started:.1f} s")
        print(f"server away {back - stopped:.1f} s (stopped {args.down_s:.0f} s + its start-up)")
        print(
            f"steps trained while it was away: {len(during)} ({during[0] if during else '-'}..{during[-1] if during else '-'})"
        )
        for key, steps in history.items():
            print(
                f"{key}: {len(steps)} values stored for {total} steps, duplicates {len(steps) - len(set(steps))}, "
                f"missing {sorted(set(range(1, total + 1)) - set(steps))}"
            )
        if inside:
            print(
                f"median time/step_s: {statistics.median(inside):.2f} s during the outage, "
                f"{statistics.median(outside):.2f} s otherwise"
            )
        print(f"queue file left behind: {(out / 'mlflow_pending.jsonl').exists()}")
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="what", required=True)
    log = sub.add_parser("logging")
    log.add_argument("--steps", type=int, default=200)
    log.add_argument("--metrics", type=int, default=70)
    out = sub.add_parser("outage")
    out.add_argument("--overrides", nargs="*", default=[])
    out.add_argument("--experiment", default="prerl-mini")
    out.add_argument("--stop-after", type=int, default=10)
    out.add_argument("--down-s", type=float, default=30.0)
    args = parser.parse_args()
    bench_logging(args) if args.what == "logging" else bench_outage(args)


if __name__ == "__main__":
    main()
