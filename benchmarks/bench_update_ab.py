"""``make bench-update KEY=optim.<field> VALUES=a,b,...``: one step's update re-run under each value of an
``optim`` setting, alternately in one process, with paired ratios.

``bench-compare`` alternates whole processes, and on a machine whose speed drifts by 10-20 % within
minutes the drift between two processes stays in its numbers. Here one captured step (the workload's
second) is updated under the first value, then the next, ..., round after round in one process, and
each round's seconds are divided by the first value's of the same round; the spread of these paired
ratios shows the noise. Timed: the policy's update (forward, backward, optimizer step) and, with a
critic (PPO), the critic's fit and value pass. Every run is a real optimizer step, so the weights move
between runs; the cost does not depend on them.

    python benchmarks/bench_update_ab.py optim.micro_batch_tokens 4096,2048,1024 [--workload grpo] [--rounds 6]
"""

from __future__ import annotations

import argparse
import inspect
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import WORKLOADS, compose_config, median, set_threads


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("key", help="an optim setting, e.g. optim.micro_batch_tokens")
    ap.add_argument("values", help="comma-separated values; ratios are against the first")
    ap.add_argument("--workload", choices=sorted(WORKLOADS), default="grpo")
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (0: torch's default)")
    args = ap.parse_args()
    if not args.key.startswith("optim."):
        raise SystemExit(f"{args.key}: only optim.<field> settings act on the update alone")
    set_threads(args.threads)
    import prerl.train.trainer as trainer

    with tempfile.TemporaryDirectory() as tmp:
        workload = WORKLOADS[args.workload]
        cfg, resolved = compose_config(workload, Path(tmp))
        # each value through Hydra, parsed and checked as `train.py optim.<field>=<value>` would be
        try:
            settings = [
                compose_config(workload + [f"{args.key}={v}"], Path(tmp))[0].optim for v in args.values.split(",")
            ]
        except Exception as error:  # noqa: BLE001 - Hydra's message names the override; no traceback
            raise SystemExit(
                f"{error} ({error.__cause__ or 'see the config reference in docs/configuration.md'})"
            ) from None
        exp = trainer.Experiment(cfg, resolved)
        exp.start()
        policy_updates, captured = trainer.policy_updates, {}
        signature = inspect.signature(policy_updates)  # calls captured by name: `optim` is replaced

        def capture(*a, **k):
            captured["policy"] = signature.bind(*a, **k).arguments
            return policy_updates(*a, **k)

        trainer.policy_updates = capture
        if exp.critic is not None:
            fit = exp.critic.fit

            def capture_fit(*a):
                captured["critic"] = a
                return fit(*a)

            exp.critic.fit = capture_fit
        exp.step(0)
        captured.clear()
        exp.step(1)
        seconds: list[list[float]] = [[] for _ in settings]
        for _ in range(args.rounds):
            for i, optim in enumerate(settings):
                start = time.process_time()
                policy_updates(**{**captured["policy"], "optim": optim})
                if exp.critic is not None:
                    exp.critic.micro_batch_tokens = optim.micro_batch_tokens
                    fit(*captured["critic"])
                    exp.critic.values(captured["critic"][0])
                seconds[i].append(time.process_time() - start)
        exp.tracker.finish("FINISHED")
    timed = "policy update + critic fit and values" if exp.critic is not None else "policy update"
    print(f"{args.workload}: {timed}, CPU s, {args.rounds} alternating rounds, {args.threads or 'default'} thread(s)\n")
    print(f"| {args.key} | median CPU s | paired ratio: median [min, max] |\n|---|---|---|")
    for value, runs in zip(args.values.split(","), seconds):
        ratios = [s / b for s, b in zip(runs, seconds[0])]
        print(f"| {value} | {median(runs):.3f} | {median(ratios):.3f} [{min(ratios):.2f}, {max(ratios):.2f}] |")


if __name__ == "__main__":
    main()
