"""``make bench-trl``: prerl's GRPO step against TRL's ``GRPOTrainer`` on the same workload.

Same model (the cached mini model, or ``--model``: e.g. ``smollm2_135m``, SmolLM2-135M-Instruct
dequantized into the cache), prompts (the train split of the model's task, ``data=mini`` or
``data=word_problems``, with the model's chat template), reward (the task's own scorer through
``prerl.scoring.Grader``, as the trainer scores: math-verify on the mini task, the ``number`` kind on
word problems), batch (16 prompts × 8 samples for the mini model, 8 × 8 for another, or ``--prompts``
and ``--samples``; one update per generation), lengths (≤ 64 new tokens or ``--new-tokens``,
temperature 1, top-p 1, no top-k), fp32 (or, with ``--bf16``, fp32 weights under
bf16 autocast on both sides: prerl's ``model.autocast=bfloat16``, TRL's ``bf16=True``), eager (or, with
``--compile``, torch.compile on both sides: prerl's ``model.compile=true``, TRL's ``torch_compile=True``), no KL
(beta 0), no gradient checkpointing, token-mean loss, learning rate and clipping from prerl's config,
the same number of torch threads. TRL forwards a step's samples in one batch, or with ``--trl-rows N``
in micro-batches of N rows (gradient accumulation over the rest, still one generation and one
optimizer step a step; prerl packs its micro-batches by ``optim.micro_batch_tokens``). Runs in
.venv-bench (TRL is never a dependency of prerl).

Rounds interleave the runs (prerl GRPO, TRL GRPO, prerl NSR-PreRL, then again), each in its own
process, so that a change in the machine's load falls on both sides; seconds per step are medians over
all measured steps (warm-up steps dropped), in CPU seconds and in wall seconds.

    python benchmarks/bench_trl.py [--rounds 2] [--threads 1] [--bf16] [--compile] [--trl-rows 128]
    python benchmarks/bench_trl.py --model smollm2_135m [--bf16] [--prompts 8 --samples 8 --new-tokens 64]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (
    MEASURED_STEPS,
    WARMUP_STEPS,
    WORKLOADS,
    Clock,
    Sizes,
    check_model,
    child_result,
    chosen_sizes,
    compose_config,
    default_sizes,
    environment,
    median,
    peak_memory_mb,
    set_threads,
    write_result,
)


def trl_steps(threads: int, bf16: bool, compiled: bool, rows: int, model: str, sizes: Sizes, steps: int) -> dict:
    """Wall and CPU seconds of each TRL optimizer step (generation, reward, forward, backward, step)."""
    set_threads(threads)
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from prerl.data import splits as data_lib
    from prerl.models.loading import model_path
    from prerl.scoring import Grader, settings_from

    class StepClock(TrainerCallback):
        """Seconds of each optimizer step, and the CPU seconds of ``generate`` within it."""

        def __init__(self):
            self.wall: list[float] = []
            self.cpu: list[float] = []
            self.generation_cpu: list[float] = []

        def on_step_begin(self, args, state, control, **kw):
            self.clock, self.generating = Clock(), 0.0

        def on_step_end(self, args, state, control, **kw):
            wall, cpu = self.clock.read()
            self.wall.append(wall)
            self.cpu.append(cpu)
            self.generation_cpu.append(self.generating)

        def timed(self, generate):
            def timed_generate(*a, **k):
                clock = Clock()
                try:
                    return generate(*a, **k)
                finally:
                    self.generating += clock.read()[1]

            return timed_generate

    with tempfile.TemporaryDirectory() as tmp:
        cfg, _ = compose_config(WORKLOADS["grpo"], Path(tmp), model=model, sizes=sizes)
        path = model_path(cfg.model, cfg.cache_dir)
        tokenizer = AutoTokenizer.from_pretrained(path)
        tokenizer.padding_side = "left"
        train = data_lib.load_splits(cfg.data)["train"]
        text = [
            tokenizer.apply_chat_template(
                m, add_generation_prompt=True, tokenize=False, **(cfg.model.chat_template_kwargs or {})
            )
            for m in train["messages"]
        ]
        # the trainer's reward path: each row's scorer kind and gold answer, looked up by its row number
        grader = Grader.of(train, settings_from(cfg.eval))

        def reward(prompts, completions, problem, **_):
            return grader(completions, problem)

        dataset = Dataset.from_dict({"prompt": text, "problem": list(range(len(text)))})
        batch = sizes.prompts * sizes.samples
        a = cfg.algorithm
        args = GRPOConfig(
            output_dir=str(Path(tmp) / "trl"),
            use_cpu=True,
            bf16=bf16,
            torch_compile=compiled,
            gradient_checkpointing=False,
            per_device_train_batch_size=rows,
            num_generations=sizes.samples,
            gradient_accumulation_steps=batch // rows,
            steps_per_generation=batch // rows,  # one generation of all the step's samples a step
            num_iterations=1,
            max_completion_length=sizes.new_tokens,
            temperature=cfg.rollout.temperature,
            top_p=cfg.rollout.top_p,
            top_k=0,
            beta=0.0,
            loss_type="dapo",
            epsilon=a.clip_ratio_low,
            epsilon_high=a.clip_ratio_high,
            learning_rate=cfg.optim.lr,
            weight_decay=cfg.optim.weight_decay,
            max_grad_norm=cfg.optim.grad_clip,
            lr_scheduler_type="constant",
            warmup_steps=0,
            max_steps=WARMUP_STEPS + steps,
            logging_steps=1,
            report_to="none",
            save_strategy="no",
            seed=cfg.seed,
            dataloader_num_workers=0,
            disable_tqdm=True,
        )
        policy = AutoModelForCausalLM.from_pretrained(path, dtype="float32")
        clock = StepClock()
        policy.generate = clock.timed(policy.generate)  # TRL generates with the unwrapped model (CPU, one process)
        trainer = GRPOTrainer(
            model=policy,
            reward_funcs=reward,
            args=args,
            train_dataset=dataset,
            processing_class=tokenizer,
            callbacks=[clock],
        )
        trainer.train()
        lengths = [h["completions/mean_length"] for h in trainer.state.log_history if "completions/mean_length" in h]
    return {
        "wall": clock.wall[WARMUP_STEPS:],
        "cpu": clock.cpu[WARMUP_STEPS:],
        "generation_cpu": median(clock.generation_cpu[WARMUP_STEPS:]),
        "mean_response_tokens": median(lengths[WARMUP_STEPS:]),
        "peak_memory_mb": peak_memory_mb(),
    }


def prerl_steps(workload: str, threads: int, bf16: bool, compiled: bool, model: str, sizes: Sizes, steps: int) -> dict:
    from bench import measure

    overrides = (["model.autocast=bfloat16"] if bf16 else []) + (["model.compile=true"] if compiled else [])
    r = measure(WORKLOADS[workload] + overrides, steps, threads, model=model, sizes=sizes)
    return {
        "wall": r["steps_wall_s"],
        "cpu": r["steps_cpu_s"],
        "generation_cpu": r["cpu"]["rollout"],
        "mean_response_tokens": r["response_tokens"] / (sizes.prompts * sizes.samples),
        "peak_memory_mb": r["peak_memory_mb"],
    }


def child(kind: str, args: argparse.Namespace) -> dict:
    """One side's run in its own process, with this process's settings."""
    sizes = args.sizes
    flags = ["--threads", str(args.threads), "--trl-rows", str(args.trl_rows), "--model", args.model]
    flags += ["--prompts", str(sizes.prompts), "--samples", str(sizes.samples), "--new-tokens", str(sizes.new_tokens)]
    flags += ["--steps", str(args.steps)] + ["--bf16"] * args.bf16 + ["--compile"] * args.compile
    return child_result([sys.executable, __file__, "--child", kind] + flags, kind)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line; ``sizes`` is the step's batch (``--model``'s defaults, then the flags), and
    ``trl_rows`` defaults to all of its samples."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--rounds", type=int, default=2, help="interleaved rounds of the three runs")
    ap.add_argument("--threads", type=int, default=1, help="torch threads per process (0: torch's default)")
    ap.add_argument("--bf16", action="store_true", help="both sides under bf16 autocast (fp32 weights)")
    ap.add_argument("--compile", action="store_true", help="both sides with torch.compile (compiled in warm-up)")
    ap.add_argument("--model", default="mini", help="a conf/model option, e.g. smollm2_135m (its task's data)")
    ap.add_argument("--prompts", type=int, help="prompts per step (default: 16 for a mini model, else 8)")
    ap.add_argument("--samples", type=int, help="samples per prompt, TRL's num_generations (default 8)")
    ap.add_argument("--new-tokens", type=int, help="longest response, TRL's max_completion_length (default 64)")
    ap.add_argument(
        "--steps", type=int, help=f"measured steps per run (default {MEASURED_STEPS}; 2 off the mini model)"
    )
    ap.add_argument("--trl-rows", type=int, help="rows per TRL forward (gradient accumulation over the rest)")
    args = ap.parse_args(argv)
    try:
        args.sizes = chosen_sizes(args.model, args.prompts, args.samples, args.new_tokens)
    except ValueError as err:
        ap.error(str(err))
    batch = args.sizes.prompts * args.sizes.samples
    args.trl_rows = args.trl_rows or batch
    if args.trl_rows < 1 or batch % args.trl_rows or args.trl_rows % args.sizes.samples:
        ap.error(f"--trl-rows {args.trl_rows}: must divide {batch} and be a multiple of {args.sizes.samples}")
    if args.steps is None:
        args.steps = MEASURED_STEPS if args.model == "mini" else 2
    if args.steps < 1 or args.rounds < 1:
        ap.error(f"--steps {args.steps} and --rounds {args.rounds} must be >= 1")
    return args


def result_name(args: argparse.Namespace) -> str:
    """bench_trl for the mini model's defaults, with a suffix per setting that differs."""
    suffix = "" if args.model == "mini" else f"_{args.model}"
    suffix += ("_bf16" if args.bf16 else "") + ("_compile" if args.compile else "")
    if args.sizes != default_sizes(args.model):
        suffix += f"_{args.sizes.prompts}x{args.sizes.samples}x{args.sizes.new_tokens}"
    suffix += f"_trl{args.trl_rows}rows" if args.trl_rows != args.sizes.prompts * args.sizes.samples else ""
    return f"bench_trl{suffix}"


def summary(steps: dict, med: dict, ratio: dict, own: dict) -> str:
    """Each side's medians as a Markdown table, then the two ratios (also rendered into the docs pages)."""
    rows = [
        "| run | CPU s/step | of which sampling | rest (reward, update, logging) | wall s/step | "
        "mean resp. tokens | peak MB |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, s in steps.items():
        last, m = s["rounds"][-1], med[name]
        rows.append(
            f"| {name} | {m['cpu']:.2f} | {m['generation_cpu']:.2f} | {m['rest_cpu']:.2f} | {m['wall']:.2f} | "
            f"{last['mean_response_tokens']:.1f} | {last['peak_memory_mb']:.0f} |"
        )
    return "\n".join(rows) + (
        f"\n\nprerl GRPO / TRL GRPO: {ratio['cpu']:.2f} CPU, {ratio['wall']:.2f} wall (target ≤ 0.5); "
        f"sampling {ratio['generation_cpu']:.2f}, the rest {ratio['rest_cpu']:.2f} (CPU)\n"
        f"prerl NSR-PreRL / prerl GRPO: {own['cpu']:.2f} CPU, {own['wall']:.2f} wall (target ≤ 0.8)"
    )


def main() -> None:
    args = parse_args()
    sizes = args.sizes
    if args.child:  # a child process: measure one side, print JSON
        if args.child == "trl":
            out = trl_steps(args.threads, args.bf16, args.compile, args.trl_rows, args.model, sizes, args.steps)
        else:
            out = prerl_steps(args.child, args.threads, args.bf16, args.compile, args.model, sizes, args.steps)
        print(json.dumps(out))
        return
    check_model(args.model)
    env = environment()
    print(
        f"workload: {sizes.prompts} prompts × {sizes.samples} samples, ≤{sizes.new_tokens} new tokens, "
        f"{args.model} model, {'bf16 autocast' if args.bf16 else 'fp32'}, "
        f"{'torch.compile' if args.compile else 'eager'}, beta 0; "
        f"{args.rounds} interleaved rounds × {args.steps} measured steps after {WARMUP_STEPS} warm-up; "
        f"{args.threads or 'default'} torch thread(s); TRL {args.trl_rows} rows a forward; "
        f"{env['cpu_count']} cores ({env['cpu_model']}), load average "
        f"{env['load_average_1_5_15min']} at start",
        flush=True,
    )
    runs = {"prerl_grpo": "grpo", "trl_grpo": "trl", "prerl_nsr_prerl": "nsr_prerl"}
    steps = {name: {"wall": [], "cpu": [], "rounds": []} for name in runs}
    for i in range(args.rounds):
        for name, kind in runs.items():
            r = child(kind, args)
            steps[name]["wall"] += r["wall"]
            steps[name]["cpu"] += r["cpu"]
            steps[name]["rounds"].append(r)
            print(
                f"  round {i + 1} {name}: median {median(r['cpu']):.2f} CPU s, {median(r['wall']):.2f} wall s "
                f"per step; load average {environment()['load_average_1_5_15min']}",
                flush=True,
            )
    med = {name: {k: median(s[k]) for k in ("wall", "cpu")} for name, s in steps.items()}
    # sampling (prerl's rollout stage, TRL's `generate`) and the rest of the step, CPU s: median over rounds
    for name, s in steps.items():
        med[name]["generation_cpu"] = median([r["generation_cpu"] for r in s["rounds"]])
        med[name]["rest_cpu"] = med[name]["cpu"] - med[name]["generation_cpu"]
    ratio = {k: med["prerl_grpo"][k] / med["trl_grpo"][k] for k in ("cpu", "wall", "generation_cpu", "rest_cpu")}
    own = {k: med["prerl_nsr_prerl"][k] / med["prerl_grpo"][k] for k in ("cpu", "wall")}
    print("\n" + summary(steps, med, ratio, own))
    env["load_average_end"] = environment()["load_average_1_5_15min"]
    payload = {
        "environment": env,
        "model": args.model,
        "sizes": sizes.to_dict(),
        "measured_steps_per_run": args.steps,
        "threads": args.threads,
        "bf16_autocast": args.bf16,
        "compile": args.compile,
        "trl_rows_per_forward": args.trl_rows,
        "steps": steps,
        "median": med,
        "prerl_over_trl": ratio,
        "nsr_over_grpo": own,
    }
    write_result(result_name(args), payload)


if __name__ == "__main__":
    main()
