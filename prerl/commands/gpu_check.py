"""GPU check: build a policy on the GPU, run each rollout engine, an update and an evaluation, and hold
every phase's peak memory against the memory plan (prerl/plan). Nothing is downloaded.

    python -m prerl.commands.gpu_check                    # or: make gpu-check; on a bare machine: dist/gpu-kit/run.sh
    python -m prerl.commands.gpu_check --size large       # a bigger policy (SIZES)
    python -m prerl.commands.gpu_check --cpu              # degraded: a micro-sized policy on the CPU (the tests run it)
    python -m prerl.commands.gpu_check rollout.max_new_tokens=512 optim.micro_batch_tokens=8192   # any config key

The policy is a Qwen3 of the chosen size with random weights, built directly on the device (its
parameter count and build time are printed), with the shipped mini model's tokenizer and its addition
prompts; rewards are a seeded coin, so that every group has samples to train on. For the transformers
engine and, when vLLM is installed, the vLLM engine, it prints the rollout's sampled tokens/s, the
update's model FLOPs utilisation (6 N + 12 L H Q T FLOPs per token, recomputation not counted: PaLM,
Chowdhery et al. 2022, appendix B; against the GPU's dense bf16 peak, ``PEAK_TFLOPS``), and each phase's peak memory above
what was allocated before it, beside the plan's. A phase that exceeds its plan by more than
``plan.margin`` fails the check (exit status 1).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib.util
import sys
import tempfile
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import torch
from mlflow.tracking import MlflowClient
from omegaconf import OmegaConf
from transformers import AutoTokenizer, Qwen3ForCausalLM

from prerl.config.schema import EvalConfig, MiniModelConfig, ModelConfig, TrackingConfig, TrainConfig
from prerl.models.loading import autocast
from prerl.models.mini_model import ensure_base_model, recipe_config
from prerl.plan import Plan, machine_memory, plan_for
from prerl.plan.memory import Target, resident
from prerl.plan.probe import PeakMemory
from prerl.plan.shapes import ModelShape
from prerl.train.trainer import Experiment, phase_at
from prerl.train.update import policy_updates

# Qwen3 decoders of a few sizes (width, MLP width, layers, query heads, key/value heads), all with the
# mini model's 325-token vocabulary (the tokenizer that ships); "micro" is the CPU check's.
SIZES = {
    "micro": (64, 128, 2, 2, 1),
    "small": (512, 1536, 8, 8, 4),
    "medium": (1024, 3072, 24, 16, 8),
    "large": (2048, 6144, 24, 16, 8),
}
# Dense bf16 tensor-core peak, TFLOP/s, by a fragment of torch.cuda.get_device_name() (NVIDIA's data
# sheets; SXM parts, without sparsity). A GPU not listed gets achieved TFLOP/s without MFU.
PEAK_TFLOPS = {"H200": 989.0, "H100 PCIe": 756.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "A10G": 125.0}
# The check's workload (any config key can be overridden on the command line).
GPU_RUN = {
    "prompts_per_step": 64,
    "rollout": {"samples_per_prompt": 8, "max_new_tokens": 256, "batch_samples": 512},
    "optim": {"micro_batch_tokens": 8192},
    "eval": {"samples_per_prompt": 8, "max_new_tokens": 256},
    "data": {"test_problems": 64},
}
CPU_RUN = {
    "prompts_per_step": 4,
    "rollout": {"samples_per_prompt": 4, "max_new_tokens": 16},
    "optim": {"micro_batch_tokens": 256},
    "eval": {"samples_per_prompt": 2, "max_new_tokens": 16},
    "data": {"test_problems": 4},
}


@dataclass
class Measured:
    phase: str  # the plan's phase name
    peak: int  # bytes above what was allocated when the phase started
    planned: int  # the plan's bytes for the phase, minus what stays allocated between phases

    def over(self, margin: float) -> bool:
        return self.peak > self.planned * (1 + margin)


def build_policy(size: str, device: torch.device, folder: Path) -> tuple[int, float]:
    """A random Qwen3 of ``size`` made on ``device`` and saved to ``folder`` with the mini tokenizer;
    its parameter count and the seconds the build took."""
    tokenizer = AutoTokenizer.from_pretrained(ensure_base_model(MiniModelConfig(), folder / "cache", progress=False))
    hidden, intermediate, layers, heads, kv_heads = SIZES[size]
    recipe = MiniModelConfig(
        hidden_size=hidden, intermediate_size=intermediate, num_layers=layers, num_heads=heads, num_kv_heads=kv_heads
    )
    ids = {"pad_token_id": tokenizer.pad_token_id, "eos_token_id": tokenizer.eos_token_id}
    config = recipe_config(recipe, len(tokenizer), **ids)
    synchronize(device)
    start = time.perf_counter()
    torch.manual_seed(0)
    with device:
        model = Qwen3ForCausalLM(config)
    synchronize(device)
    seconds = time.perf_counter() - start
    params = sum(p.numel() for p in model.parameters())
    model.save_pretrained(folder / "policy")
    tokenizer.save_pretrained(folder / "policy")
    return params, seconds


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def check_store(folder: Path) -> str:
    """The check's own MLflow store, in its temporary folder."""
    return f"sqlite:///{folder / 'mlflow.db'}"


def keep_artifacts_in(folder: Path, tracking: TrackingConfig) -> None:
    """Create the check's experiment with its artifacts in ``folder``: MLflow puts a SQLite store's
    artifacts in ./mlruns of the working directory unless the experiment names a place (prerl.tracking.tracker
    then finds the experiment and tags it). A store named on the command line keeps its own."""
    if tracking.uri != check_store(folder):
        return
    client = MlflowClient(tracking.uri)
    if client.get_experiment_by_name(tracking.experiment) is None:
        client.create_experiment(tracking.experiment, artifact_location=(folder / "mlruns").as_uri())


def run_config(folder: Path, device: torch.device, engine: str, overrides: Sequence[str]) -> TrainConfig:
    on_gpu = device.type == "cuda"
    model = ModelConfig(
        path=str(folder / "policy"),
        mini=None,
        autocast="bfloat16" if on_gpu else None,
        gradient_checkpointing=on_gpu,
    )
    base = TrainConfig(
        model=model,
        eval=EvalConfig(sets={"test": {}}),
        device=device.type,
        warmup_steps=1,
        total_steps=2,
        output_dir=str(folder / "out"),
        cache_dir=str(folder / "cache"),
        resume="never",
    )
    merged = OmegaConf.merge(
        OmegaConf.structured(base),
        GPU_RUN if on_gpu else CPU_RUN,
        {
            "rollout": {"engine": engine},
            "tracking": {"uri": check_store(folder), "experiment": "gpu-check"},
        },
        OmegaConf.from_dotlist(list(overrides)),
    )
    return OmegaConf.to_object(merged)  # type: ignore[return-value]


class CheckExperiment(Experiment):
    """Rewards from a seeded coin: a random policy never answers right, and the check needs every
    objective to have samples to train on."""

    def reward(self, rollout, problems):
        return torch.tensor([float(zlib.crc32(f"{i}:{t}".encode()) % 2) for i, t in enumerate(rollout.texts)])


def planned_increment(plan: Plan, *names: str) -> int:
    """The largest of the phases ``names``, above what the plan keeps allocated between phases."""
    held = sum(i.bytes for i in resident(plan.setup))
    return max(p.total for p in plan.phases if p.name in names) - held


def device_used(device: torch.device) -> int:
    free, total = torch.cuda.mem_get_info(device)
    return total - free


@contextlib.contextmanager
def vllm_peak(exp: Experiment, device: torch.device):
    """vLLM's memory is its own (its pool, CUDA graphs, NCCL): measured as the device's used memory,
    sampled when a generation returns (before the engine sleeps)."""
    llm = exp.engine.llm  # type: ignore[attr-defined]
    generate, box = llm.generate, {"peak": 0}

    def sampled(*args, **kwargs):
        out = generate(*args, **kwargs)
        box["peak"] = max(box["peak"], device_used(device))
        return out

    torch.cuda.empty_cache()  # the plan assumes torch's cache is emptied before vLLM wakes
    start = device_used(device)
    llm.generate = sampled
    try:
        yield box
    finally:
        llm.generate = generate
        box["peak"] -= start


def measure_rollout(exp: Experiment, plan: Plan, device: torch.device):
    """One collect (rollout and reward): its peak beside the plan, sampled tokens/s, and the experience."""
    if exp.cfg.rollout.engine == "vllm":
        with vllm_peak(exp, device) as box:
            start = time.perf_counter()
            experience = exp.collect()
        row = Measured("rollout (vLLM)", box["peak"], planned_increment(plan, "rollout (vLLM)"))
    else:
        with PeakMemory(device) as probe:
            start = time.perf_counter()
            experience = exp.collect()
        row = Measured("rollout", probe.peak, planned_increment(plan, "rollout"))
    return row, experience.generated_tokens / (time.perf_counter() - start), experience


def measure_update(exp: Experiment, plan: Plan, device: torch.device, experience):
    """The step's optimizer step on its rollout, twice: the second, with AdamW's moments allocated and the
    gradients freed after the first (issue #35), is the steady state the plan describes."""
    cfg, phase = exp.cfg, phase_at(0, exp.cfg)
    batch, _, _ = exp.prepare(phase, experience)
    rows = [list(range(len(batch.seqs.input_ids)))]

    def update():
        return policy_updates(
            exp.model, exp.optimizer, batch, rows, phase, cfg.algorithm, cfg.optim, cfg.rollout.max_new_tokens
        )

    update()
    exp.optimizer.zero_grad(set_to_none=True)
    synchronize(device)
    with PeakMemory(device) as probe:
        start = time.perf_counter()
        stats, _ = update()
        synchronize(device)
    seconds = time.perf_counter() - start
    exp.optimizer.zero_grad(set_to_none=True)
    row = Measured("update", probe.peak, planned_increment(plan, "update", "optimizer step"))
    return row, flops_rates(plan, stats["update_tokens"], seconds, batch, device)


def measure_engine(cfg: TrainConfig, plan: Plan, device: torch.device) -> tuple[list[Measured], dict[str, float]]:
    exp = CheckExperiment(cfg, OmegaConf.to_container(OmegaConf.structured(cfg), resolve=True))  # type: ignore[arg-type]
    exp.start()
    try:
        with autocast(cfg.model, device):
            rollout, tokens_per_s, experience = measure_rollout(exp, plan, device)
            update, rates = measure_update(exp, plan, device, experience)
        rows = [rollout, update]
        if cfg.rollout.engine == "hf":
            with PeakMemory(device) as probe:
                exp.evaluate(0)
            rows.append(Measured("evaluation", probe.peak, planned_increment(plan, "evaluation")))
    finally:
        exp.tracker.finish("FINISHED")
    return rows, {"rollout tokens/s": tokens_per_s, **rates}


def flops_per_token(s: ModelShape, sequence: float) -> float:
    """Training FLOPs per token (PaLM's appendix B): 6 N for the matrices a token passes through (every
    parameter but the input embedding, a lookup; a tied embedding is also the LM head and counts once)
    and 12 L H Q T for attention over a sequence of T tokens."""
    matrices = s.params - (0 if s.tied else s.vocab * s.hidden)
    return 6 * matrices + 12 * s.layers * s.heads * s.head_dim * sequence


def flops_rates(plan: Plan, tokens: float, seconds: float, batch, device: torch.device) -> dict[str, float]:
    rows = batch.seqs.attention_mask.sum(-1).float()
    achieved = flops_per_token(plan.setup.shape, float(rows.mean())) * tokens / seconds
    out = {"update TFLOP/s": achieved / 1e12}
    peak = peak_tflops(torch.cuda.get_device_name(device)) if device.type == "cuda" else None
    if peak is not None:
        out["update MFU"] = achieved / (peak * 1e12)
    return out


def peak_tflops(name: str) -> Optional[float]:
    return next((tflops for fragment, tflops in PEAK_TFLOPS.items() if fragment in name), None)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m prerl.commands.gpu_check", description=__doc__.splitlines()[0])
    p.add_argument("overrides", nargs="*", help="config keys, e.g. rollout.max_new_tokens=512")
    p.add_argument("--size", choices=list(SIZES), default=None, help="the policy (default: medium; micro with --cpu)")
    p.add_argument("--cpu", action="store_true", help="the degraded check on the CPU (no GPU needed)")
    p.add_argument("--engines", default=None, help="comma-separated: hf,vllm (default: hf, and vllm when installed)")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parser().parse_intermixed_args(list(sys.argv[1:] if argv is None else argv))
    if not args.cpu and not torch.cuda.is_available():
        print("gpu check: torch sees no GPU; --cpu runs the degraded check on the CPU", file=sys.stderr)
        return 2
    device = torch.device("cpu" if args.cpu else "cuda")
    size = args.size or ("micro" if args.cpu else "medium")
    vllm = importlib.util.find_spec("vllm") is not None and device.type == "cuda"
    engines = args.engines.split(",") if args.engines else ["hf"] + (["vllm"] if vllm else [])
    print(f"torch {torch.__version__} on {torch.cuda.get_device_name(device) if device.type == 'cuda' else 'CPU'}")
    failed = False
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        params, seconds = build_policy(size, device, folder)
        print(f"policy: Qwen3 '{size}', {params / 1e6:.1f} M parameters, built on {device.type} in {seconds:.2f} s")
        for engine in engines:
            cfg = run_config(folder, device, engine, args.overrides)
            keep_artifacts_in(folder, cfg.tracking)
            total = torch.cuda.get_device_properties(device).total_memory if device.type == "cuda" else machine_memory()
            plan = plan_for(cfg, Target(device.type, total, 1))
            rows, rates = measure_engine(cfg, plan, device)
            gc.collect()  # the engine's experiment, before the next one is built
            if device.type == "cuda":
                torch.cuda.empty_cache()
            print(f"\nengine {engine}: " + ", ".join(f"{k} {v:.3g}" for k, v in rates.items()))
            print("| phase | peak MiB (measured) | plan MiB | measured / plan |\n|---|---|---|---|")
            for row in rows:
                mark = " EXCEEDS THE PLAN" if row.over(cfg.plan.margin) else ""
                ratio = row.peak / row.planned if row.planned else float("nan")
                print(f"| {row.phase} | {row.peak / 2**20:.1f} | {row.planned / 2**20:.1f} | {ratio:.2f}{mark} |")
                failed |= row.over(cfg.plan.margin)
    print("\nresult: " + ("a phase exceeded its memory plan" if failed else "every phase within its memory plan"))
    return 1 if failed else 0


if __name__ == "__main__":  # the guard vLLM needs where it starts worker processes
    sys.exit(main())
