"""Measure a base model on candidate versions of a synthetic task before any method runs.

    python -m prerl.commands.calibrate                       # SmolLM2-135M-Instruct on the word-problem candidates
    python -m prerl.commands.calibrate --problems 16 --samples 2 --out /tmp/c.json   # a quick look
    python -m prerl.commands.calibrate --write-doc docs/smollm2-task.md     # its table into the page

A task for RL must leave the base model room to learn and room to fail: every group of samples needs
some mixed rewards. So the task's difficulty, its prompt and its sampling temperature are chosen from
the base model's accuracy alone, measured here with the same engine, prompts and scorer as training,
and written down (docs/smollm2-task.md) before any method is run on it. Each candidate is a set of
``data`` overrides; each is measured greedily (one sample) and at every temperature (``--samples``
each), on its own ``test`` split (``--problems`` problems). The output is a JSON record (machine,
commit, settings and every cell), written after each cell so that a relaunch continues where the last
one stopped, and a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import torch

from prerl.config.schema import DataConfig
from prerl.data import splits as data_lib
from prerl.eval.evaluator import evaluate
from prerl.launch.cli import compose_checked
from prerl.models.loading import load_policy
from prerl.rollout import make_engine
from prerl.scoring import Grader
from prerl.tracking.fingerprint import machine, packages
from prerl.tracking.run_info import git

SOLVE_STEP_BY_STEP = "Solve the problem step by step. Then write the final answer as a number."

# name -> data overrides. The in-distribution candidates differ in steps (numbers per problem), digits
# and whether a system turn asks for steps and a number; two steps is the harder split's candidate.
CANDIDATES: dict[str, dict] = {
    "one_step_1_digit": dict(min_operands=2, max_operands=2, min_digits=1, max_digits=1),
    "one_step_1_2_digits": dict(min_operands=2, max_operands=2, min_digits=1, max_digits=2),
    "one_step_1_digit_instructed": dict(
        min_operands=2, max_operands=2, min_digits=1, max_digits=1, system_prompt=SOLVE_STEP_BY_STEP
    ),
    "two_steps_1_digit": dict(min_operands=3, max_operands=3, min_digits=1, max_digits=1),
    "two_steps_1_2_digits": dict(min_operands=3, max_operands=3, min_digits=1, max_digits=2),
    "one_step_2_digits": dict(min_operands=2, max_operands=2, min_digits=2, max_digits=2),
    "one_step_1_2_digits_instructed": dict(
        min_operands=2, max_operands=2, min_digits=1, max_digits=2, system_prompt=SOLVE_STEP_BY_STEP
    ),
}


SETTINGS = ("model", "data", "problems", "samples", "max_new_tokens")  # cells measured under others are redone


def measure(engine, tokenizer, data: DataConfig, temperature: float, samples: int, max_new_tokens: int) -> dict:
    """Avg@K (K = 1 when greedy), the share of responses cut at the length limit and mean length."""
    split = data_lib.render(data_lib.load_splits(data)["test"], tokenizer)
    K = 1 if temperature == 0 else samples
    start = time.perf_counter()
    result = evaluate(engine, "test", split["prompt_ids"], K, temperature, 1.0, max_new_tokens, Grader.of(split))
    return {
        "avg": result.avg,
        "truncated": float(sum(result.truncated)) / len(result.truncated),
        "mean_tokens": float(sum(result.lengths or [])) / len(result.truncated),
        "samples": int(result.correct.size),
        "seconds": time.perf_counter() - start,
        "example": result.responses[0],
    }


def table(record: dict) -> str:
    """The Markdown table of a calibration record: a row per candidate, a column per temperature measured."""
    temps = sorted({float(t) for cells in record["cells"].values() for t in cells})
    head = "| candidate | " + " | ".join("greedy" if t == 0 else f"T = {t}" for t in temps) + " |"
    lines = [head, "|---" * (len(temps) + 1) + "|"]
    for name, cells in record["cells"].items():
        shown = [f"{100 * cells[str(t)]['avg']:.1f}%" if str(t) in cells else "-" for t in temps]
        lines.append(f"| {describe(CANDIDATES.get(name, {})) or name} | " + " | ".join(shown) + " |")
    where = record["machine"]
    lines.append(
        f"\n{record['problems']} test problems per candidate, {record['samples']} samples each at a temperature "
        f"(greedy: one), at most {record['max_new_tokens']} new tokens; {where['cpu']}, {where['torch_threads']} "
        f"thread(s), commit {str(record['commit'])[:7]}."
    )
    return "\n".join(lines)


def describe(overrides: dict) -> str:
    """A candidate in words: its steps, the digits of its numbers, and whether a system turn instructs."""
    if not overrides:
        return ""
    steps = overrides["max_operands"] - 1
    low, high = overrides["min_digits"], overrides["max_digits"]
    digits = f"{low} digit" if low == high == 1 else f"{low}-{high} digits" if low != high else f"{low} digits"
    told = ", instructed" if overrides.get("system_prompt") else ""
    return f"{steps} step{'s' if steps > 1 else ''}, {digits}{told}"


BEGIN, END = "<!-- calibration: begin -->", "<!-- calibration: end -->"


def write_table(record: dict, doc: Path) -> None:
    """Replace the block between ``BEGIN`` and ``END`` in ``doc`` with the record's table."""
    text = doc.read_text()
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    doc.write_text(f"{head}{BEGIN}\n{table(record)}\n{END}{tail}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2_135m", help="a conf/model/ option")
    parser.add_argument("--data", default="word_problems", help="a conf/data/ option (the task)")
    parser.add_argument("--problems", type=int, default=64, help="test problems per candidate")
    parser.add_argument("--samples", type=int, default=8, help="samples per problem at each temperature")
    parser.add_argument("--temperatures", default="0,0.5,0.7,1.0", help="comma-separated; 0 = greedy")
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--candidates", default=",".join(CANDIDATES), help="comma-separated names of CANDIDATES")
    parser.add_argument("--cache-dir", default=".cache/prerl")
    parser.add_argument("--out", default="docs/smollm2-task/calibration.json")
    parser.add_argument(
        "--write-doc", type=Path, help="only write the table of --out into this page's calibration block"
    )
    args = parser.parse_args()
    if args.write_doc:
        write_table(json.loads(Path(args.out).read_text()), args.write_doc)
        return

    cfg = compose_checked([f"model={args.model}", f"data={args.data}", f"cache_dir={args.cache_dir}"])
    torch.manual_seed(0)
    model, tokenizer = load_policy(cfg.model, cfg.cache_dir, torch.device("cpu"))
    engine = make_engine(cfg.rollout, model, tokenizer)
    temps = [float(t) for t in args.temperatures.split(",")]
    record = {
        "model": args.model,
        "data": args.data,
        "problems": args.problems,
        "samples": args.samples,
        "max_new_tokens": args.max_new_tokens,
        "temperatures": temps,
        "machine": machine(),
        "packages": packages(),
        "commit": git("rev-parse", "HEAD"),
        "cells": {},
    }
    out = Path(args.out)
    if out.exists():  # a relaunch keeps the cells measured with the same settings
        earlier = json.loads(out.read_text())
        if all(earlier[k] == record[k] for k in SETTINGS):
            record["cells"] = earlier["cells"]
    out.parent.mkdir(parents=True, exist_ok=True)
    for name in args.candidates.split(","):
        data = replace(cfg.data, test_problems=args.problems, **CANDIDATES[name])
        cells = record["cells"].setdefault(name, {})
        for t in temps:
            if str(t) in cells:
                continue
            torch.manual_seed(0)
            cells[str(t)] = measure(engine, tokenizer, data, t, args.samples, args.max_new_tokens)
            out.write_text(json.dumps(record, indent=1))  # each cell as soon as it is measured
            print(f"{name:40s} T={t:<4} avg {100 * cells[str(t)]['avg']:5.1f}%", flush=True)
    print(table(record))


if __name__ == "__main__":
    main()
