"""``make bench``: where the time of a prerl step goes, on a fixed mini workload.

For GRPO (main phase), NSR-PreRL (warm-up phase, pre-train space) and PPO (critic): warm-up steps,
then measured steps of the real ``Experiment.step``, each followed by the trainer's MLflow log.
Prints median seconds per stage, response tokens per second and peak memory as a Markdown table,
writes JSON to benchmarks/results/bench.json, then shows how a GRPO step grows with samples per
prompt and with the response-length limit. Each configuration runs in its own process.

Stages: rollout (sampling and decoding to text), reward, log-probs (every forward of the policy
and the reference: the update's own forward, its shared prompts' forward, and any no-grad scoring
pass), backward+step (the rest
of the policy update, and PPO's critic fit), other (advantages, packing, critic values), logging.
The vocabulary-sized work is timed as parts of its own inside them: the sampler (``decode.draw``:
softmax, cumulative sum and draw over the vocabulary, once per decoded token, inside the rollout) and
the fp32 log-softmax of the log-prob passes (``logprobs.next_token_logprobs``, inside log-probs, and
its hand-written backward, inside backward+step). Only timers wrap these functions: what the step
computes is unchanged.

Where the time goes against the hardware: each child process also measures this machine's peak fp32
matmul rate (``peak_matmul_flops``, same threads) and counts the matmul FLOPs of its rollout, forwards
and backwards from the model's shape and the token counts of each step (``FlopCounter``). A stage's
*floor* is its FLOPs at that peak (bf16 matmuls' peak when the run computes in bf16); the second
table prints CPU seconds over floor per stage, the matmul stages without their vocabulary parts. The
vocabulary parts do few FLOPs per byte: their floor is the logits they must touch (the sampler and
the log-softmax read them once, its backward reads them and writes their gradient) at this machine's
memory speed beyond the cache (``elementwise_rates``).
``--profile`` splits the rollout's and the update's time by kind of op, and holds the ops that are
not matmuls against this machine's per-op cost and its memory speed in and beyond the cache
(``elementwise_rates``), for the bytes their input shapes imply (``op_bytes``).

    python benchmarks/bench.py                # everything, one torch thread
    python benchmarks/bench.py --quick        # skip the cost-growth sweep
    python benchmarks/bench.py --threads 0    # torch's default thread count
    python benchmarks/bench.py --profile [KEY=VALUE ...]  # one GRPO step: cProfile, then time by kind of op
    python benchmarks/bench.py --experiment smollm2_dsrl --steps 2   # a preset's model and sizes (make bench-smollm2)
    python benchmarks/bench.py --model smollm2_135m --quick [--bf16]  # a model at its default sizes (make bench MODEL=)
"""

from __future__ import annotations

import argparse
import json
import math
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
    environment,
    median,
    peak_memory_mb,
    set_threads,
    write_result,
)

STAGES = ["rollout", "reward", "logprobs", "backward_step", "other", "logging"]
FLOOR_STAGES = ["rollout", "logprobs", "backward_step"]  # the stages with matmul FLOPs
# the vocabulary-sized work, timed inside a stage: part -> the stage that contains it
PARTS = {"sampler": "rollout", "log_softmax_fwd": "logprobs", "log_softmax_bwd": "backward_step"}
HEADERS = {
    "rollout": "rollout",
    "reward": "reward",
    "logprobs": "log-probs",
    "backward_step": "backward+step",
    "other": "other",
    "logging": "logging",
    "sampler": "sampler",
    "log_softmax_fwd": "log-softmax",
    "log_softmax_bwd": "log-softmax backward",
}


class Laps:
    """Wall and CPU seconds accumulated per name by wrapped functions (and, where given, the bytes
    each call must touch)."""

    def __init__(self):
        self.seconds: dict[str, list[float]] = {}
        self.calls: dict[str, int] = {}
        self.bytes: dict[str, float] = {}

    def wrap(self, fn, name: str, nbytes=None):
        def timed(*args, **kwargs):
            if nbytes is not None:
                self.bytes[name] = self.bytes.get(name, 0.0) + nbytes(*args)
            clock = Clock()
            try:
                return fn(*args, **kwargs)
            finally:
                wall, cpu = clock.read()
                acc = self.seconds.setdefault(name, [0.0, 0.0])
                acc[0] += wall
                acc[1] += cpu
                self.calls[name] = self.calls.get(name, 0) + 1

        return timed

    def get(self, name: str, i: int) -> float:
        return self.seconds.get(name, [0.0, 0.0])[i]

    def clear(self) -> None:
        self.seconds.clear()
        self.calls.clear()
        self.bytes.clear()


def tensor_bytes(t) -> float:
    return float(t.numel() * t.element_size())


def instrument(exp) -> Laps:
    """Time the stages of ``exp.step`` by wrapping the functions it calls (nothing else changes)."""
    import prerl.rollout.decode as decode
    import prerl.train.logprobs as logprobs
    import prerl.train.trainer as trainer
    import prerl.train.update as update

    laps = Laps()
    exp.rollout = laps.wrap(exp.rollout, "rollout")
    exp.reward = laps.wrap(exp.reward, "reward")
    update.response_logprobs = laps.wrap(update.response_logprobs, "update_forward")
    update.context_states = laps.wrap(update.context_states, "update_contexts")  # shared prompts, in the update
    trainer.score_logprobs = laps.wrap(trainer.score_logprobs, "nograd_logprobs")
    update.policy_update = laps.wrap(update.policy_update, "policy_update")  # called by policy_updates
    if exp.critic is not None:
        exp.critic.update = laps.wrap(exp.critic.update, "critic_update")
    # the vocabulary-sized parts: the logits each reads once (its backward also writes their gradient)
    decode.draw = laps.wrap(decode.draw, "sampler", lambda logits, *_: tensor_bytes(logits))
    logprobs.next_token_logprobs = laps.wrap(
        logprobs.next_token_logprobs, "log_softmax_fwd", lambda logits, *_: tensor_bytes(logits)
    )
    softmax = logprobs._ChunkedLogSoftmax  # autograd looks its backward up on the class at every call
    softmax.backward = staticmethod(  # type: ignore[method-assign]
        laps.wrap(softmax.backward, "log_softmax_bwd", lambda ctx, *_: 2 * tensor_bytes(ctx.saved_tensors[0]))
    )
    return laps


def best_cpu_seconds(fn, repeats: int = 7, calls: int = 1) -> float:
    """CPU seconds of one call of ``fn``: the best of ``repeats`` timings of ``calls`` calls, after one
    unmeasured call (this process's threads)."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        clock = Clock()
        for _ in range(calls):
            fn()
        best = min(best, clock.read()[1] / calls)
    return max(best, 1e-9)


def peak_matmul_flops(size: int = 1024, repeats: int = 7, dtype: str = "float32") -> float:
    """This machine's matmul rate in ``dtype`` in FLOP/s, best of ``repeats`` (CPU time, this process's
    threads)."""
    import torch

    kind = getattr(torch, dtype)
    a, b = torch.randn(size, size, dtype=kind), torch.randn(size, size, dtype=kind)
    return 2 * size**3 / best_cpu_seconds(lambda: a @ b, repeats)


class FlopCounter:
    """Matmul FLOPs of a causal transformer (q/k/v/o, gated MLP, LM head, attention scores and mix),
    counted from token counts: 2 FLOPs per multiply-add; a backward costs twice its forward."""

    def __init__(self, config):
        c = config.get_text_config() if hasattr(config, "get_text_config") else config
        h, heads = c.hidden_size, c.num_attention_heads
        hd = getattr(c, "head_dim", None) or h // heads
        kv = getattr(c, "num_key_value_heads", None) or heads
        per_layer = h * heads * hd + 2 * h * kv * hd + heads * hd * h + 3 * h * c.intermediate_size
        self.per_token = 2 * (c.num_hidden_layers * per_layer + c.vocab_size * h)
        self.attention = 4 * c.num_hidden_layers * heads * hd  # per (query, key) pair: scores + mix
        self.counts = dict.fromkeys(("rollout", "logprobs", "backward_step"), 0.0)

    def sequence(self, n: int) -> float:
        """Forward FLOPs of one causal sequence of ``n`` tokens (query i attends to i + 1 keys)."""
        return n * self.per_token + self.attention * n * (n + 1) / 2

    def rollout(self, rollout) -> None:
        """Prefill once per prompt, then one token at a time per sample."""
        total = sum(self.sequence(len(p)) for p in rollout.prompt_ids)
        for g, r in zip(rollout.group, rollout.response_ids):
            p = len(rollout.prompt_ids[g])
            total += self.sequence(p + len(r)) - self.sequence(p)
        self.counts["rollout"] += total

    def forward(self, seqs, grad: bool) -> None:
        """A forward of ``seqs``; with shared contexts, only the responses' (``contexts`` counts theirs)."""
        lengths = seqs.attention_mask.sum(-1).tolist()
        if seqs.context_group is None:
            flops = sum(self.sequence(int(n)) for n in lengths)
        else:  # every response but its last token, on its context's keys and values
            flops = sum(
                self.sequence(int(n) - 1) - self.sequence(p) for n, p in zip(lengths, seqs.response_start.tolist())
            )
        self.add(flops, grad)

    def contexts(self, seqs, rows, grad: bool) -> None:
        """The forward of the distinct contexts of ``rows`` (``prerl.train.logprobs.context_states``)."""
        rows = range(len(seqs.context_group)) if rows is None else rows
        first = {int(seqs.context_group[r]): int(seqs.response_start[r]) for r in rows}
        self.add(sum(self.sequence(p) for p in first.values()), grad)

    def add(self, flops: float, grad: bool) -> None:
        self.counts["logprobs"] += flops
        if grad:
            self.counts["backward_step"] += 2 * flops


def count_flops(exp) -> FlopCounter:
    """Count the FLOPs of the rollouts and of every policy/reference forward (and backward)."""
    import torch

    import prerl.train.logprobs as logprobs
    import prerl.train.update as update

    counter = FlopCounter(exp.model.config)
    timed_rollout = exp.rollout

    def rollout(*args, **kwargs):
        out = timed_rollout(*args, **kwargs)
        counter.rollout(out[0])
        return out

    def counted(fn):
        def forward(model, seqs, *args, **kwargs):
            counter.forward(seqs, torch.is_grad_enabled())
            return fn(model, seqs, *args, **kwargs)

        return forward

    def counted_contexts(fn):
        def contexts(model, seqs, rows=None, leaves=True):
            counter.contexts(seqs, rows, torch.is_grad_enabled())
            return fn(model, seqs, rows, leaves)

        return contexts

    exp.rollout = rollout
    update.response_logprobs = counted(update.response_logprobs)
    logprobs.response_logprobs = counted(logprobs.response_logprobs)  # the no-grad scoring passes
    update.context_states = counted_contexts(update.context_states)  # an update's shared prompts
    logprobs.context_states = counted_contexts(logprobs.context_states)  # a scoring pass's, or a lone forward's
    return counter


def stage_seconds(laps: Laps, step: tuple[float, float], logging: tuple[float, float]) -> dict[str, dict]:
    """Wall and CPU seconds of each stage (they sum to the step) and of each vocabulary part (``PARTS``:
    already inside its stage, so never counted twice)."""
    out = {}
    for i, kind in enumerate(("wall", "cpu")):
        s = {
            "rollout": laps.get("rollout", i),
            "reward": laps.get("reward", i),
            "logprobs": laps.get("update_forward", i) + laps.get("update_contexts", i) + laps.get("nograd_logprobs", i),
            "backward_step": laps.get("policy_update", i)
            - laps.get("update_forward", i)
            - laps.get("update_contexts", i)
            + laps.get("critic_update", i),
            "logging": logging[i],
            "step": step[i] + logging[i],
        }
        s["other"] = s["step"] - sum(v for k, v in s.items() if k != "step")
        out[kind] = s | {part: laps.get(part, i) for part in PARTS}
    return out


def without_parts(seconds: dict[str, float]) -> dict[str, float]:
    """Each stage's seconds less its vocabulary parts, and the parts: these sum to the step."""
    out = {stage: seconds[stage] for stage in STAGES}
    for part, stage in PARTS.items():
        out[stage] -= seconds[part]
        out[part] = seconds[part]
    return out


def measure(
    overrides: list[str],
    steps: int = MEASURED_STEPS,
    threads: int = 1,
    experiment: str | None = None,
    model: str = "mini",
    sizes: Sizes | None = None,
    warmup: int = WARMUP_STEPS,
) -> dict:
    """Median seconds per stage over ``steps`` steps after ``warmup`` unmeasured ones."""
    threads = set_threads(threads)
    from prerl.models.loading import compute_dtype
    from prerl.train.trainer import Experiment

    with tempfile.TemporaryDirectory() as tmp:
        cfg, resolved = compose_config(overrides, Path(tmp), model=model, experiment=experiment, sizes=sizes)
        exp = Experiment(cfg, resolved)
        exp.start()
        laps, rows = instrument(exp), []
        counter = count_flops(exp)
        dtype = compute_dtype(cfg.model, exp.device) or "float32"
        peak = peak_matmul_flops(dtype=dtype if dtype == "bfloat16" else "float32")
        memory_bps = elementwise_rates()["memory_bps"]
        samples = cfg.prompts_per_step * cfg.rollout.samples_per_prompt
        parameters = sum(p.numel() for p in exp.model.parameters())  # a tied embedding counts once
        try:
            for step in range(warmup + steps):
                laps.clear()
                counter.counts = dict.fromkeys(counter.counts, 0.0)
                clock = Clock()
                metrics = exp.step(step)
                step_s = clock.read()
                clock = Clock()
                exp.tracker.log(metrics, step + 1)
                rows.append(
                    {
                        "seconds": stage_seconds(laps, step_s, clock.read()),
                        "flops": dict(counter.counts),
                        "bytes": {part: laps.bytes.get(part, 0.0) for part in PARTS},
                        "response_tokens": metrics["train/response_length"] * samples,
                        "warmup_phase": bool(metrics["train/warmup"]),
                        # policy/reference passes without gradient (old log-probs, KL): the on-policy
                        # GRPO and NSR-PreRL steps must run none
                        "nograd_passes": laps.calls.get("nograd_logprobs", 0),
                    }
                )
        finally:
            exp.tracker.finish("FINISHED")
    rows = rows[warmup:]
    out = {
        kind: {k: median([r["seconds"][kind][k] for r in rows]) for k in STAGES + ["step"] + list(PARTS)}
        for kind in ("wall", "cpu")
    }
    out["response_tokens"] = median([r["response_tokens"] for r in rows])
    out["tokens_per_s"] = {
        kind: median([r["response_tokens"] / r["seconds"][kind]["step"] for r in rows]) for kind in ("wall", "cpu")
    }
    out["steps_wall_s"] = [r["seconds"]["wall"]["step"] for r in rows]
    out["steps_cpu_s"] = [r["seconds"]["cpu"]["step"] for r in rows]
    out["flops"] = {k: median([r["flops"][k] for r in rows]) for k in FLOOR_STAGES}
    out["bytes"] = {k: median([r["bytes"][k] for r in rows]) for k in PARTS}
    out["peak_matmul_flops"] = peak
    out["peak_dtype"] = dtype
    out["parameters"] = parameters
    out["memory_bps"] = memory_bps
    out["sizes"] = {
        "prompts": cfg.prompts_per_step,
        "samples": cfg.rollout.samples_per_prompt,
        "new_tokens": cfg.rollout.max_new_tokens,
    }
    out["peak_memory_mb"] = peak_memory_mb()
    out["warmup_phase"] = rows[0]["warmup_phase"]
    out["nograd_passes"] = max(r["nograd_passes"] for r in rows)
    out["threads"] = threads
    return out


def in_subprocess(
    overrides: list[str],
    steps: int,
    threads: int,
    experiment: str | None = None,
    model: str = "mini",
    sizes: Sizes | None = None,
    warmup: int = WARMUP_STEPS,
) -> dict:
    spec = {"overrides": overrides, "steps": steps, "threads": threads, "experiment": experiment}
    spec |= {"model": model, "sizes": sizes.to_dict() if sizes else None, "warmup": warmup}
    return child_result([sys.executable, __file__, "--child", json.dumps(spec)], str(overrides))


def run_child(spec: dict) -> dict:
    """``measure`` of a ``--child`` spec (a spec from an older tree's bench_compare lacks the later keys)."""
    sizes = Sizes(**spec["sizes"]) if spec.get("sizes") else None
    return measure(
        spec["overrides"],
        spec["steps"],
        spec["threads"],
        spec.get("experiment"),
        spec.get("model", "mini"),
        sizes,
        spec.get("warmup", WARMUP_STEPS),
    )


def workload_sizes(experiment: str | None, model: str, sizes: Sizes) -> tuple[int, int, int, str]:
    """Prompts per step, samples per prompt, new tokens and the model of the measured workload."""
    if experiment is None:
        return sizes.prompts, sizes.samples, sizes.new_tokens, model
    with tempfile.TemporaryDirectory() as tmp:
        cfg, _ = compose_config([], Path(tmp), experiment=experiment)
    return cfg.prompts_per_step, cfg.rollout.samples_per_prompt, cfg.rollout.max_new_tokens, cfg.model.name()


def table(results: dict[str, dict]) -> str:
    lines = [
        "| workload | "
        + " | ".join(f"{HEADERS[s]} s" for s in STAGES)
        + " | of which sampler s | of which log-softmax (fwd + bwd) s"
        + " | step CPU s | step wall s | resp. tokens/CPU s | peak MB | no-grad passes / step |",
        "|" + "---|" * (len(STAGES) + 8),
    ]
    for name, r in results.items():
        c = r["cpu"]
        parts = [f"{c['sampler']:.2f}", f"{c['log_softmax_fwd'] + c['log_softmax_bwd']:.2f}"]
        cells = (
            [f"{c[s]:.2f}" for s in STAGES]
            + parts
            + [
                f"{r['cpu']['step']:.2f}",
                f"{r['wall']['step']:.2f}",
                f"{r['tokens_per_s']['cpu']:.0f}",
                f"{r['peak_memory_mb']:.0f}",
                str(r.get("nograd_passes", "-")),
            ]
        )
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def growth_table(growth: dict[str, dict]) -> str:
    """GRPO's step against samples per prompt and new tokens (keys ``<samples>x<new tokens>``)."""
    lines = [
        "| samples/prompt | max new tokens | mean resp. tokens | step CPU s | rollout CPU s | update CPU s | step wall s |",
        "|---|---|---|---|---|---|---|",
    ]
    for key, r in growth.items():
        n, t = (int(x) for x in key.split("x"))
        c = r["cpu"]
        lines.append(
            f"| {n} | {t} | {r['response_tokens'] / (r['sizes']['prompts'] * n):.1f} | {c['step']:.2f} | {c['rollout']:.2f} | "
            f"{c['logprobs'] + c['backward_step']:.2f} | {r['wall']['step']:.2f} |"
        )
    return "\n".join(lines)


FLOOR_COLUMNS = ["rollout", "sampler", "logprobs", "log_softmax_fwd", "backward_step", "log_softmax_bwd"]


def floors(r: dict) -> dict[str, tuple[float, float, float]]:
    """Per matmul stage (less its vocabulary part) and per vocabulary part: (CPU s, work, floor s), the
    work in GFLOP at the measured matmul peak or in GB of logits at the measured memory speed."""
    seconds = without_parts(r["cpu"])
    out = {}
    for stage in FLOOR_STAGES:
        out[stage] = (seconds[stage], r["flops"][stage] / 1e9, r["flops"][stage] / r["peak_matmul_flops"])
    for part in PARTS:
        out[part] = (seconds[part], r["bytes"][part] / 1e9, r["bytes"][part] / r["memory_bps"])
    return out


def floor_table(results: dict[str, dict]) -> str:
    """Per stage: CPU seconds, its work, the seconds that work takes at this machine's measured peak (the
    floor), and seconds / floor; the matmul stages without their vocabulary parts, which are columns of
    their own. The step's floor sums the stages' floors."""
    heads = [
        f"{HEADERS[c]}{' (less its vocabulary part)' if c in FLOOR_STAGES else ''}: CPU s / "
        f"{'GFLOP' if c in FLOOR_STAGES else 'GB'} / floor s / × floor"
        for c in FLOOR_COLUMNS
    ]
    lines = [
        "| workload | matmul peak GFLOP/s | memory GB/s | " + " | ".join(heads) + " | step: floor s / × floor |",
        "|" + "---|" * (len(FLOOR_COLUMNS) + 4),
    ]
    for name, r in results.items():
        stages, cells = floors(r), []
        for c in FLOOR_COLUMNS:
            cpu, work, floor = stages[c]
            times = f"{cpu / floor:.1f}" if floor > 0 else "-"
            cells.append(f"{cpu:.2f} / {work:.2f} / {floor:.3f} / {times}")
        total = sum(floor for _, _, floor in stages.values())
        peak = f"{r['peak_matmul_flops'] / 1e9:.0f} ({r.get('peak_dtype', 'float32')})"
        lines.append(
            f"| {name} | {peak} | {r['memory_bps'] / 1e9:.0f} | "
            + " | ".join(cells)
            + f" | {total:.3f} / {r['cpu']['step'] / total:.1f} |"
        )
    return "\n".join(lines)


def profile_one_step(threads: int, overrides: list[str]) -> None:
    import cProfile
    import pstats

    set_threads(threads)
    from prerl.train.trainer import Experiment

    with tempfile.TemporaryDirectory() as tmp:
        cfg, resolved = compose_config(WORKLOADS["grpo"] + overrides, Path(tmp))
        exp = Experiment(cfg, resolved)
        compiled = cfg.model.compile
        exp.start()
        exp.step(0)
        prof = cProfile.Profile()
        prof.runcall(exp.step, 1)
        ops = op_split(exp, 2)
        exp.tracker.finish("FINISHED")
    stats = pstats.Stats(prof)
    stats.sort_stats("cumulative").print_stats(r"prerl/(trainer|update|logprobs|rollout)", 15)
    stats.sort_stats("tottime").print_stats(20)
    fused = " Inductor's fused kernels (model.compile) are not aten ops: they count as Python, dispatch." * compiled
    print(f"Where each stage's CPU time goes (torch.profiler, one more step; its own overhead included).{fused}\n")
    print("| stage | CPU s | matmul kernels | attention kernels | other ops | Python, dispatch |")
    print("|---|---|---|---|---|---|")
    traffic = {stage: (split.pop("other_count"), split.pop("other_bytes")) for stage, split in ops.items()}
    for stage, split in ops.items():
        total = split.pop("total")
        shares = " | ".join(f"{split[k]:.3f} s ({split[k] / total:.0%})" for k in OP_KINDS + ("python",))
        print(f"| {stage} | {total:.3f} | {shares} |")
    rates = elementwise_rates()
    print(
        f"\nThe other ops against this machine's speed on them (measured now: a tiny op {rates['op_s'] * 1e6:.1f} µs; "
        f"a product of fp32 vectors {rates['cached_bps'] / 1e9:.0f} GB/s within the core's cache, "
        f"{rates['memory_bps'] / 1e9:.0f} GB/s beyond it). Bytes are estimated from the ops' input shapes "
        "(inputs read once, one output the size of the largest input, 4 bytes an element; an over-estimate for "
        "indexing ops, which touch only some rows). Ops here are those that run a kernel themselves:\n"
    )
    print(
        "| stage | other ops CPU s | ops | GB | ops × tiny op s | GB at the in-cache rate s | GB at the beyond-cache rate s |"
    )
    print("|---|---|---|---|---|---|---|")
    for stage, split in ops.items():
        count, nbytes = traffic[stage]
        print(
            f"| {stage} | {split['other']:.3f} | {count:.0f} | {nbytes / 1e9:.2f} | {count * rates['op_s']:.3f} "
            f"| {nbytes / rates['cached_bps']:.3f} | {nbytes / rates['memory_bps']:.3f} |"
        )


OP_KINDS = ("matmul", "attention", "other")


def op_kind(name: str) -> str:
    if name in ("aten::mm", "aten::bmm", "aten::addmm", "aten::baddbmm", "aten::addbmm"):
        return "matmul"
    return "attention" if "scaled_dot_product" in name else "other"


def elementwise_rates(repeats: int = 7) -> dict[str, float]:
    """This machine's speed on ops that are not matmuls (CPU time, best of ``repeats``): seconds of one
    op on one element (dispatch, no data), and bytes/s of a product of two fp32 vectors that fit in a
    core's cache (64 k elements) and of two that do not (16 M)."""
    import torch

    one = torch.ones(1)
    rates = {"op_s": best_cpu_seconds(lambda: one * one, repeats, calls=1000)}
    for name, size, calls in (("cached_bps", 1 << 16, 200), ("memory_bps", 1 << 24, 3)):
        a, b = torch.rand(size), torch.rand(size)
        # two vectors read, one written
        rates[name] = 3 * 4 * size / best_cpu_seconds(lambda a=a, b=b: a * b, repeats, calls)
    return rates


# ops that only make a new view or an empty tensor (or return their input): no data moves
NO_DATA_OPS = {
    f"aten::{name}"
    for name in "view _unsafe_view view_as as_strided slice select narrow split chunk unbind transpose t permute "
    "expand unsqueeze squeeze flatten unflatten _reshape_alias detach alias lift_fresh resolve_conj resolve_neg "
    "empty empty_like empty_strided to result_type".split()
}


def op_bytes(event) -> float:
    """An op's memory traffic, estimated from its input shapes: each input read once and one output the
    size of the largest input written, 4 bytes an element (none for views and empty tensors)."""
    if event.name in NO_DATA_OPS:
        return 0.0
    sizes = [math.prod(shape) for shape in event.input_shapes if shape]
    return 4.0 * (sum(sizes) + max(sizes, default=0))


def op_split(exp, step: int) -> dict[str, dict[str, float]]:
    """CPU seconds of the rollout (sampling, decoding, reward) and of the update (forward, backward,
    step), split by the self time of torch's ops: matmul kernels, attention kernels, every other op
    (elementwise, copies, reductions, and composite ops' own overhead), and the rest: Python and
    dispatch outside ops (with the profiler's own per-op overhead)."""
    from torch.profiler import ProfilerActivity, profile, record_function

    import prerl.train.trainer as trainer

    def labelled(fn, name):
        def run(*args, **kwargs):
            with record_function(f"stage:{name}"):
                return fn(*args, **kwargs)

        return run

    collect, updates = exp.collect, trainer.policy_updates
    exp.collect, trainer.policy_updates = labelled(collect, "rollout"), labelled(updates, "update")
    try:
        with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
            exp.step(step)
    finally:
        exp.collect, trainer.policy_updates = collect, updates
    split: dict[str, dict[str, float]] = {}
    for event in prof.events():
        stage = event
        while stage is not None and not stage.name.startswith("stage:"):
            stage = stage.cpu_parent
        if stage is None:
            continue
        row = split.setdefault(
            stage.name[len("stage:") :],
            dict.fromkeys(OP_KINDS + ("python", "total", "other_count", "other_bytes"), 0.0),
        )
        if event is stage:
            row["total"] += event.cpu_time_total / 1e6
        elif event.name.startswith("aten::"):
            kind = op_kind(event.name)
            row[kind] += event.self_cpu_time_total / 1e6
            if kind == "other" and not any(c.name.startswith("aten::") for c in event.cpu_children):
                row["other_count"] += 1  # ops that run a kernel themselves (composites call others)
                row["other_bytes"] += op_bytes(event)
    for row in split.values():
        row["python"] = row["total"] - sum(row[k] for k in OP_KINDS)
    return split


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line; ``sizes`` is the measured batch (``--model``'s defaults, then the flags)."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--quick", action="store_true", help="skip the cost-growth sweep")
    ap.add_argument("--profile", action="store_true", help="cProfile one GRPO step and exit")
    ap.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="--profile: config overrides of its step")
    ap.add_argument("--threads", type=int, default=1, help="torch threads per process (0: torch's default)")
    ap.add_argument(
        "--json", type=Path, help="where the JSON result goes (default: a new file in results/benchmarks/<name>/)"
    )
    ap.add_argument(
        "--experiment", help="measure this preset's model and sizes (e.g. smollm2_dsrl) instead of the mini workload"
    )
    ap.add_argument(
        "--model",
        default="mini",
        help="a conf/model option (smollm2_135m brings data=word_problems) or a shaped model (qwen3_0_6b_random)",
    )
    ap.add_argument("--prompts", type=int, help="prompts per step (default: the model's, common.default_sizes)")
    ap.add_argument("--samples", type=int, help="samples per prompt (default: the model's)")
    ap.add_argument("--new-tokens", type=int, help="longest response (default: the model's)")
    ap.add_argument("--bf16", action="store_true", help="bf16 autocast over fp32 weights (model.autocast=bfloat16)")
    ap.add_argument("--workloads", nargs="+", choices=list(WORKLOADS), default=list(WORKLOADS), help="which to run")
    ap.add_argument(
        "--steps", type=int, help=f"measured steps per workload (default {MEASURED_STEPS}; 2 off the mini model)"
    )
    args = ap.parse_args(argv)
    if args.overrides and not args.profile:
        ap.error("KEY=VALUE overrides go with --profile (make bench-compare takes them for the stage tables)")
    if args.experiment and args.model != "mini":
        ap.error("--experiment brings its own model; give --model or --experiment, not both")
    try:
        args.sizes = chosen_sizes(args.model, args.prompts, args.samples, args.new_tokens)
    except ValueError as err:
        ap.error(str(err))
    if args.steps is None:
        args.steps = MEASURED_STEPS if args.model == "mini" and not args.experiment else 2
    if args.steps < 1:
        ap.error(f"--steps {args.steps}: must be >= 1")
    return args


def result_name(args: argparse.Namespace) -> str:
    """The benchmark's name in the results history: one per workload and dtype."""
    if args.experiment:
        return f"bench-{args.experiment}{'-bf16' * args.bf16}"
    if args.model != "mini" or args.bf16:
        return f"bench-{args.model}{'-bf16' * args.bf16}"
    return "bench"


def main() -> None:
    args = parse_args()
    if args.child:
        print(json.dumps(run_child(json.loads(args.child))))
        return
    if args.profile:
        profile_one_step(args.threads, args.overrides)
        return
    check_model(args.model)
    env = environment()
    prompts, samples, new_tokens, model = workload_sizes(args.experiment, args.model, args.sizes)
    dtype = ["model.autocast=bfloat16"] if args.bf16 else []
    preset = f"experiment={args.experiment}" if args.experiment else "fp32 weights"
    print(
        f"workload: {prompts} prompts × {samples} samples, ≤{new_tokens} new tokens, {model} ({preset}"
        f"{', bf16 autocast' * args.bf16}), one on-policy update per step; medians of {args.steps} steps after "
        f"{WARMUP_STEPS} warm-up; {args.threads or 'default'} torch thread(s); {env['cpu_count']} cores "
        f"({env['cpu_model']}), load average {env['load_average_1_5_15min']} at start",
        flush=True,
    )
    sizes = None if args.experiment else args.sizes

    def run(overrides: list[str], steps: int, at: Sizes | None = sizes) -> dict:
        return in_subprocess(overrides + dtype, steps, args.threads, args.experiment, args.model, at)

    results = {name: run(WORKLOADS[name], args.steps) for name in args.workloads}
    print("\nCPU seconds per stage (median per step):\n\n" + table(results), flush=True)
    print(
        "\nAgainst the floor (matmul FLOPs at this machine's measured matmul peak in the compute dtype, the "
        "vocabulary parts' logits at its measured memory speed; PPO: policy passes only, the critic's are in its "
        "seconds but not in its FLOPs):\n\n" + floor_table(results),
        flush=True,
    )
    ratio = {}
    if {"grpo", "nsr_prerl"} <= results.keys():
        ratio = {k: results["nsr_prerl"][k]["step"] / results["grpo"][k]["step"] for k in ("cpu", "wall")}
        print(
            f"\nNSR-PreRL step / GRPO step: {ratio['cpu']:.2f} CPU, {ratio['wall']:.2f} wall (target ≤ 0.8); "
            f"load average now {environment()['load_average_1_5_15min']}",
            flush=True,
        )
    growth = {}
    if not args.quick:
        print("\nCost growth (GRPO, median of 2 steps after 1 warm-up):\n", flush=True)
        grid = [(n, new_tokens) for n in (samples // 2, samples, samples * 2)]
        grid += [(samples, t) for t in (new_tokens // 2, new_tokens * 2)]
        for n, t in grid:
            growth[f"{n}x{t}"] = run(
                WORKLOADS["grpo"] + [f"rollout.samples_per_prompt={n}", f"rollout.max_new_tokens={t}"],
                2,
                None if args.experiment else Sizes(prompts, n, t),
            )
        print(growth_table(growth), flush=True)
    env["load_average_end"] = environment()["load_average_1_5_15min"]
    payload = {
        "environment": env,
        "threads": args.threads,
        "experiment": args.experiment,
        "model": model,
        "bf16_autocast": args.bf16,
        "workloads": results,
        "nsr_over_grpo": ratio,
        "growth": growth,
    }
    write_result(result_name(args), payload, args.json)


if __name__ == "__main__":
    main()
