"""``make bench-growth``: how a GRPO step's seconds grow with samples per prompt, new tokens and model size.

Three models on one task's shape of batch: the mini model (0.8M parameters, its own task), SmolLM2-135M-
Instruct and a randomly initialised model of Qwen3-0.6B's shape (``benchmarks/shaped_model.py``; both
on ``data=word_problems`` with SmolLM2's tokenizer). Each model runs the base batch (``--prompts`` ×
``--samples`` × ``--new-tokens``), then half and twice the samples per prompt, then half and twice the
new tokens: five points, each in its own process, ``--warmup`` unmeasured steps then ``--steps``
measured ones of the trainer's own step (``bench.measure``). A random model rarely samples its end
token, so its responses run to the limit; the table gives each point's mean response length.

Prints a Markdown table and adds its JSON to results/benchmarks/bench_growth/.

    python benchmarks/bench_growth.py [--models mini smollm2_135m qwen3_0_6b_random] [--steps 1] [--warmup 1]
        [--prompts 8 --samples 8 --new-tokens 64] [--threads 1] [--bf16]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import in_subprocess
from common import REAL_MODEL_SIZES, SHAPED_MODELS, WORKLOADS, Sizes, check_model, environment, write_result

MODELS = ["mini", "smollm2_135m", "qwen3_0_6b_random"]


def grid(base: Sizes) -> list[Sizes]:
    """The base batch, half and twice its samples per prompt, half and twice its new tokens."""
    samples = [max(1, base.samples // 2), base.samples, base.samples * 2]
    tokens = [max(1, base.new_tokens // 2), base.new_tokens * 2]
    points = [Sizes(base.prompts, n, base.new_tokens) for n in samples]
    points += [Sizes(base.prompts, base.samples, t) for t in tokens]
    return list(dict.fromkeys(points))  # in order, without repeats (a base of 1 sample or token)


HEADER = (
    "| model | parameters | samples/prompt | max new tokens | mean resp. tokens | step CPU s | rollout CPU s | "
    "update CPU s | step wall s | peak MB |\n|---|---|---|---|---|---|---|---|---|---|"
)


def row_line(row: dict) -> str:
    """One point of the grid as a table row (``row``: as the JSON result stores it)."""
    r, sizes, c = row["result"], row["sizes"], row["result"]["cpu"]
    return (
        f"| {row['model']} | {r['parameters'] / 1e6:.1f}M | {sizes['samples']} | {sizes['new_tokens']} | "
        f"{r['response_tokens'] / (sizes['prompts'] * sizes['samples']):.1f} | {c['step']:.2f} | "
        f"{c['rollout']:.2f} | {c['logprobs'] + c['backward_step']:.2f} | {r['wall']['step']:.2f} | "
        f"{r['peak_memory_mb']:.0f} |"
    )


def table(rows: list[dict]) -> str:
    return "\n".join([HEADER, *map(row_line, rows)])


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=MODELS, help="conf/model options or shaped models")
    ap.add_argument("--prompts", type=int, default=REAL_MODEL_SIZES.prompts, help="prompts per step")
    ap.add_argument("--samples", type=int, default=REAL_MODEL_SIZES.samples, help="base samples per prompt")
    ap.add_argument("--new-tokens", type=int, default=REAL_MODEL_SIZES.new_tokens, help="base longest response")
    ap.add_argument("--steps", type=int, default=1, help="measured steps per point")
    ap.add_argument("--warmup", type=int, default=1, help="unmeasured steps before them")
    ap.add_argument("--threads", type=int, default=1, help="torch threads per process (0: torch's default)")
    ap.add_argument("--bf16", action="store_true", help="bf16 autocast over fp32 weights")
    ap.add_argument(
        "--json", type=Path, help="where the JSON result goes (default: a new file in results/benchmarks/<name>/)"
    )
    args = ap.parse_args(argv)
    for name in ("prompts", "samples", "new_tokens", "steps"):
        if getattr(args, name) < 1:
            ap.error(f"--{name.replace('_', '-')} {getattr(args, name)}: must be >= 1")
    if args.warmup < 0:
        ap.error(f"--warmup {args.warmup}: must be >= 0")
    args.sizes = Sizes(args.prompts, args.samples, args.new_tokens)
    return args


def main() -> None:
    args = parse_args()
    for model in args.models:
        check_model(model)
    env = environment()
    print(
        f"GRPO step, {args.warmup} warm-up + {args.steps} measured step(s) per point, base {args.prompts} prompts × "
        f"{args.samples} samples × ≤{args.new_tokens} tokens, {'bf16 autocast' if args.bf16 else 'fp32'}; "
        f"{args.threads or 'default'} torch thread(s); {env['cpu_count']} cores ({env['cpu_model']}), load "
        f"average {env['load_average_1_5_15min']} at start\n",
        flush=True,
    )
    print(HEADER, flush=True)
    overrides = WORKLOADS["grpo"] + (["model.autocast=bfloat16"] if args.bf16 else [])
    rows = []
    for model in args.models:
        if model in SHAPED_MODELS:  # build its folder here, not inside a timed child
            from common import model_overrides

            model_overrides(model)
        for sizes in grid(args.sizes):
            r = in_subprocess(overrides, args.steps, args.threads, model=model, sizes=sizes, warmup=args.warmup)
            rows.append({"model": model, "sizes": sizes.to_dict(), "result": r})
            print(row_line(rows[-1]), flush=True)
    env["load_average_end"] = environment()["load_average_1_5_15min"]
    payload = {
        "environment": env,
        "threads": args.threads,
        "bf16_autocast": args.bf16,
        "steps": args.steps,
        "warmup": args.warmup,
        "rows": rows,
    }
    write_result(f"bench_growth{'_bf16' if args.bf16 else ''}", payload, args.json)


if __name__ == "__main__":
    main()
