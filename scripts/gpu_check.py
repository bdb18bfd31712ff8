"""GPU check, under 10 minutes on one GPU: a few DSRL steps (NSR-PreRL warm-up → reincarnation → GRPO)
with bf16 compute and gradient checkpointing, printing seconds and throughput per stage.

Rollouts use vLLM when it is installed, else the transformers engine. The policy is the mini model
scaled up (built and pre-trained locally on the GPU first, ~1-2 min), so nothing is downloaded.

    python scripts/gpu_check.py                     # or: make gpu-check
    python scripts/gpu_check.py rollout=hf          # any train.py override, e.g. the other engine
"""

from __future__ import annotations

import importlib.util
import sys
import tempfile
import time
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from prerl.config import register_configs  # noqa: E402
from prerl.trainer import Experiment  # noqa: E402

SCALED_UP_MINI = [  # ~40M parameters: big enough to load a GPU, small enough to pre-train in a minute or two
    "model.mini.hidden_size=512",
    "model.mini.intermediate_size=1536",
    "model.mini.num_layers=8",
    "model.mini.num_heads=8",
    "model.mini.num_kv_heads=4",
]
RUN = [
    "device=cuda",
    "model.autocast=bfloat16",
    "model.gradient_checkpointing=true",
    "warmup_steps=3",
    "total_steps=6",
    "prompts_per_step=64",
    "rollout.samples_per_prompt=8",
    "eval.every_steps=0",
    "checkpoint.every_steps=0",
    "resume=never",
    "tracking.experiment=gpu-check",
]


def config(overrides: list[str], out: Path):
    engine = ["rollout=vllm"] if importlib.util.find_spec("vllm") else ["rollout=hf"]
    fixed = [f"output_dir={out}", f"tracking.uri=sqlite:///{out / 'mlflow.db'}"]
    register_configs()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose(config_name="config", overrides=engine + SCALED_UP_MINI + RUN + fixed + overrides)
    return OmegaConf.to_object(cfg), OmegaConf.to_container(cfg, resolve=True)


def main(overrides: list[str]) -> None:
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        cfg, resolved = config(overrides, Path(tmp))
        if cfg.device == "cuda":
            print(f"GPU: {torch.cuda.get_device_name()}, torch {torch.__version__}")
        print(
            f"engine: {cfg.rollout.engine}; compute {cfg.model.autocast}; "
            f"{cfg.prompts_per_step} prompts × {cfg.rollout.samples_per_prompt} samples per step"
        )
        exp = Experiment(cfg, resolved)  # builds the scaled-up mini base model on first use
        params = sum(p.numel() for p in exp.model.parameters()) / 1e6
        print(f"ready in {time.perf_counter() - t0:.0f} s (policy {params:.1f}M parameters)\n")
        exp.start()
        samples = cfg.prompts_per_step * cfg.rollout.samples_per_prompt
        print("| step | phase | rollout+reward s | sampled tok/s | advantage s | update s | trained tok/s | step s |")
        print("|---|---|---|---|---|---|---|---|")
        status = "FAILED"
        try:
            for step in range(cfg.total_steps):
                if step == cfg.warmup_steps:
                    exp.reincarnate()
                m = exp.step(step)
                exp.tracker.log(m, step + 1)
                tokens = m["train/response_length"] * samples
                print(
                    f"| {step + 1} | {'warm-up' if m['train/warmup'] else 'GRPO'} "
                    f"| {m['time/rollout_reward_s']:.2f} | {tokens / m['time/rollout_reward_s']:.0f} "
                    f"| {m['time/advantage_s']:.2f} | {m['time/update_s']:.2f} "
                    f"| {m['train/kept_tokens'] / m['time/update_s']:.0f} | {m['time/step_s']:.2f} |"
                )
            status = "FINISHED"
        finally:
            exp.tracker.finish(status)
    if cfg.device == "cuda":
        print(f"\npeak GPU memory (training process): {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB")
    print(f"total {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":  # the guard vLLM needs where it starts worker processes
    main(sys.argv[1:])
