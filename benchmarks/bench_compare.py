"""``make bench-compare REF=<git ref>``: this tree's stage seconds against another commit's (or against
itself with other settings), interleaved.

A machine whose speed drifts (a shared or throttled VM: this one's measured fp32 peak moved by 30 %
within an hour) makes two ``make bench`` runs at different times incomparable. This script checks
out ``REF`` into a temporary folder (``git archive``) and alternates the two trees' benchmark
processes, workload by workload and round by round, so that a drift falls on both; each side runs its
own ``benchmarks/bench.py --child`` (its own code and its own FLOP count). Prints, per workload and
stage, the median over rounds of each side's median CPU seconds per step, and after / before.

``--before KEY=VALUE ...`` and ``--after KEY=VALUE ...`` give each side config overrides (on top of
each workload's), and without ``REF`` both sides run this tree: the A/B of one switch, e.g.
``--before rollout.plain_decode=false`` or ``--after model.compile=true``. ``--experiment`` measures a
preset's model and sizes instead of the mini workload (e.g. the real model's dtypes:
``--experiment smollm2_dsrl --workloads grpo --before model.autocast=null``).

    python benchmarks/bench_compare.py [REF] [--before KEY=VALUE ...] [--after KEY=VALUE ...] [--rounds 3]
        [--experiment NAME] [--workloads grpo ...] [--steps N]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import tempfile
from io import BytesIO
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import HEADERS, STAGES
from common import MEASURED_STEPS, ROOT, WORKLOADS, child_result, environment, median


def checkout(ref: str, into: Path) -> Path:
    """The files of ``ref`` (committed content only) under ``into``."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", ref], capture_output=True, check=True).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into


def child(tree: Path, overrides: list[str], threads: int, steps: int, experiment: str | None) -> dict:
    spec = json.dumps({"overrides": overrides, "steps": steps, "threads": threads, "experiment": experiment})
    env = {**os.environ, "PYTHONPATH": str(tree)}  # that tree's prerl, not an installed one
    command = [sys.executable, str(tree / "benchmarks" / "bench.py"), "--child", spec]
    return child_result(command, f"{tree}: {overrides}", env=env, cwd=tree)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("ref", nargs="?", help="the commit (or branch, tag) of the 'before' side (default: this tree)")
    ap.add_argument("--before", nargs="+", default=[], metavar="KEY=VALUE", help="overrides of the 'before' side")
    ap.add_argument("--after", nargs="+", default=[], metavar="KEY=VALUE", help="overrides of this tree's side")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds of both sides")
    ap.add_argument("--threads", type=int, default=1, help="torch threads per process (0: torch's default)")
    ap.add_argument("--experiment", help="a preset's model and sizes (e.g. smollm2_dsrl) instead of the mini workload")
    ap.add_argument("--workloads", nargs="+", choices=list(WORKLOADS), default=list(WORKLOADS), help="which to run")
    ap.add_argument("--steps", type=int, default=MEASURED_STEPS, help="measured steps per run")
    args = ap.parse_args()
    if args.ref is None and not (args.before or args.after):
        ap.error("give REF, --before/--after KEY=VALUE ..., or both")
    workloads = {name: WORKLOADS[name] for name in args.workloads}
    before_name = " ".join([args.ref or "this tree"] + args.before)
    print(
        f"{' '.join(['this tree'] + args.after)} against {before_name}; {args.rounds} interleaved rounds; "
        f"load average {environment()['load_average_1_5_15min']}"
    )
    seconds: dict[tuple[str, str], list[dict]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        before = checkout(args.ref, Path(tmp)) if args.ref else ROOT
        for i in range(args.rounds):
            for name, overrides in workloads.items():
                sides = (("before", before, overrides + args.before), ("after", ROOT, overrides + args.after))
                for side, tree, settings in sides:
                    run = child(tree, settings, args.threads, args.steps, args.experiment)
                    seconds.setdefault((name, side), []).append({**run["cpu"], "wall": run["wall"]["step"]})
            print(f"  round {i + 1} done; load average {environment()['load_average_1_5_15min']}", flush=True)
    columns = STAGES + ["step", "wall"]
    print(
        "\nCPU seconds per step (wall: the step's wall seconds), before → after (after / before); medians over "
        "rounds of each run's median:\n"
    )
    print("| workload | " + " | ".join(HEADERS.get(c, c) for c in columns) + " |\n|" + "---|" * (len(columns) + 1))
    for name in workloads:
        cells = []
        for c in columns:
            b, a = (median([r[c] for r in seconds[(name, side)]]) for side in ("before", "after"))
            cells.append(f"{b:.2f} → {a:.2f} ({a / b:.2f})" if b > 0 else f"{b:.2f} → {a:.2f}")
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
