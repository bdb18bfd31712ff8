"""``python train.py <overrides> --plan`` and ``python -m prerl.plan``: print the memory plan, load nothing.

    python train.py experiment=paper_qwen3_4b --plan --ranks 8 --device-memory 80GiB
    python -m prerl.plan model=qwen3_8b distributed.strategy=fsdp2 --ranks 8 --device-memory 80GiB
    python -m prerl.plan --table        # docs/scaling-out.md's "what fits where" for Qwen3-4B and Qwen3-8B

Exit status: 0 when the plan fits, 1 when a phase exceeds the device by more than ``plan.margin``
(what ``train.py`` would refuse), 2 for a config error.
"""

from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

from prerl.launch.cli import compose_checked, exit_on_config_error
from prerl.plan import plan_for, refusal, target_for
from prerl.plan.report import report

# docs/scaling-out.md#memory-plan: the paper preset (Qwen3-4B; Qwen3-8B with model=qwen3_8b) on one and eight
# GPUs of 80 GiB (H100) and 141 GB (H200), under each strategy. One GPU cannot host the preset's
# tensor-parallel pair of vLLM ranks, so it runs one engine per GPU there.
TABLE_MODELS = {"Qwen3-4B": [], "Qwen3-8B": ["model=qwen3_8b"]}
TABLE_DEVICES = {"H100 (80 GB)": "80GiB", "H200 (141 GB)": "141GiB"}
TABLE_RANKS = (1, 8)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m prerl.plan", description=__doc__.splitlines()[0])
    p.add_argument("overrides", nargs="*", help="train.py overrides, e.g. experiment=paper_qwen3_4b")
    p.add_argument("--plan", action="store_true", help=argparse.SUPPRESS)  # train.py's flag
    p.add_argument("--ranks", type=int, default=None, help="processes (default: $WORLD_SIZE, else 1)")
    p.add_argument(
        "--device-memory",
        default=None,
        help="one device's memory, e.g. 80GiB (default: plan.device_memory, else the local GPU's)",
    )
    p.add_argument(
        "--table",
        action="store_true",
        help="the table of docs/scaling-out.md: Qwen3-4B and 8B on H100/H200, 1 and 8 GPUs",
    )
    return p


def table() -> str:
    head = "| model | device | GPUs | strategy | peak phase | peak GiB | fits |"
    rows = [head, "|---|---|---|---|---|---|---|"]
    for model, model_overrides in TABLE_MODELS.items():
        for device, memory in TABLE_DEVICES.items():
            for ranks in TABLE_RANKS:
                for strategy in ("replicate", "fsdp2"):
                    overrides = ["experiment=paper_qwen3_4b", *model_overrides, f"distributed.strategy={strategy}"]
                    overrides += [] if ranks > 1 else ["rollout.vllm.tensor_parallel_size=1"]
                    cfg = compose_checked(overrides)
                    plan = plan_for(cfg, target_for(cfg, ranks, memory))
                    fits = "yes" if refusal(plan, 0.0) is None else "no"
                    peak = plan.peak
                    rows.append(
                        f"| {model} | {device} | {ranks} | {strategy} | {peak.name} | {peak.total / 2**30:.1f} | {fits} |"
                    )
    return "\n".join(rows)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parser().parse_intermixed_args(list(sys.argv[1:] if argv is None else argv))
    if args.table:
        print(table())
        return 0
    with exit_on_config_error():
        cfg = compose_checked(args.overrides)
        plan = plan_for(cfg, target_for(cfg, args.ranks, args.device_memory))
    print(report(plan))
    return 1 if refusal(plan, cfg.plan.margin) is not None else 0
