"""The fixed benchmark workload, shared by ``bench.py`` (prerl) and ``bench_trl.py`` (TRL).

16 prompts × 8 samples, 64 new tokens, one on-policy update per step, fp32, the cached mini model.
Another model (``--model``, ``make bench... MODEL=``) brings its task's data and its own default sizes
(``default_sizes``): a real model, 8 prompts × 8 samples × 64 tokens. Configs are composed through
Hydra exactly as ``python train.py <overrides>`` would. The cache folder is ``$PRERL_CACHE`` when set
(``make ... CACHE=<folder>``: a checkout that reuses another's dequantized SmolLM2), else the checkout's.

Every number is taken twice: wall seconds, and CPU seconds of the process (``time.process_time``).
On a shared machine the wall clock counts the time other processes held the cores; with one torch
thread, CPU seconds are close to what the wall clock would read on an idle machine.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

ROOT = Path(__file__).resolve().parents[1]
# Every run of a benchmark adds a file to this committed history (``write_result``): the docs pages render
# their tables from the newest file of each benchmark (``benchmarks/results_pages.py``).
RESULTS = ROOT / "results" / "benchmarks"
PROMPTS, SAMPLES, NEW_TOKENS = 16, 8, 64
WARMUP_STEPS, MEASURED_STEPS = 1, 4
CACHE = Path(os.environ.get("PRERL_CACHE") or ROOT / ".cache" / "prerl").resolve()

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

# a conf/model option -> the data its task needs (the mini models' default, data=mini, otherwise)
MODEL_DATA = {"smollm2_135m": "word_problems"}
# model options that are not in conf/model: randomly initialised models of a shipped config.json's shape,
# with SmolLM2's tokenizer and task (benchmarks/shaped_model.py)
SHAPED_MODELS = {"qwen3_0_6b_random": "Qwen/Qwen3-0.6B"}
MINI_MODELS = ("mini", "micro", "mini_styles")


@dataclass(frozen=True)
class Sizes:
    """One step's batch: prompts, samples per prompt, longest response."""

    prompts: int = PROMPTS
    samples: int = SAMPLES
    new_tokens: int = NEW_TOKENS

    def overrides(self) -> list[str]:
        return [
            f"prompts_per_step={self.prompts}",
            f"rollout.samples_per_prompt={self.samples}",
            f"rollout.max_new_tokens={self.new_tokens}",
        ]

    def to_dict(self) -> dict:
        return asdict(self)


# A real model's step: 8 prompts x 8 samples x <= 64 tokens, half the mini sizes' samples, so that the many
# steps of an interleaved comparison on a real model fit one sitting on a laptop.
REAL_MODEL_SIZES = Sizes(prompts=8, samples=8, new_tokens=64)


def default_sizes(model: str) -> Sizes:
    return Sizes() if model in MINI_MODELS else REAL_MODEL_SIZES


def chosen_sizes(model: str, prompts: int | None, samples: int | None, new_tokens: int | None) -> Sizes:
    """``model``'s default sizes with the ones given (not None) in their place; each must be >= 1."""
    base = default_sizes(model)
    sizes = Sizes(
        base.prompts if prompts is None else prompts,
        base.samples if samples is None else samples,
        base.new_tokens if new_tokens is None else new_tokens,
    )
    if min(sizes.prompts, sizes.samples, sizes.new_tokens) < 1:
        raise ValueError(f"--prompts, --samples and --new-tokens must be >= 1 (got {sizes})")
    return sizes


def check_model(model: str) -> None:
    """A one-line error for a model option that is neither in conf/model nor a shaped model."""
    if model not in SHAPED_MODELS and not (ROOT / "conf" / "model" / f"{model}.yaml").is_file():
        options = sorted([p.stem for p in (ROOT / "conf" / "model").glob("*.yaml")] + list(SHAPED_MODELS))
        raise SystemExit(f"--model {model}: not a conf/model option nor a shaped model; choose one of {options}")


def model_overrides(model: str) -> list[str]:
    """The overrides that select ``model`` and its task's data (a shaped model's folder is built first)."""
    if model in SHAPED_MODELS:
        from shaped_model import shaped_model_folder

        folder = shaped_model_folder(SHAPED_MODELS[model], str(CACHE))
        return ["model=mini", f"model.path={folder}", "model.mini=null", "data=word_problems"]
    return [f"model={model}"] + ([f"data={MODEL_DATA[model]}"] if model in MODEL_DATA else [])


# name -> overrides selecting the phase that every measured step runs
WORKLOADS = {
    "grpo": ["algorithm=grpo", "warmup_steps=0"],  # main phase, post-train space
    "nsr_prerl": ["objective=nsr_prerl", "warmup_steps=100000"],  # warm-up phase, pre-train space
    "ppo": ["algorithm=ppo", "warmup_steps=0"],  # main phase with a critic
}


def compose_config(
    overrides: list[str],
    workdir: Path,
    model: str = "mini",
    experiment: str | None = None,
    sizes: Sizes | None = None,
):
    """The typed TrainConfig and resolved dict for the benchmark workload plus ``overrides``: ``model``
    (the mini model by default) at ``sizes`` (``default_sizes(model)`` when None), or with
    ``experiment`` that preset's model and sizes (``experiment=smollm2_dsrl``)."""
    from prerl.config.schema import register_configs

    register_configs()
    where = [
        f"cache_dir={CACHE}",
        f"output_dir={workdir / 'out'}",
        f"tracking.uri=sqlite:///{workdir / 'mlflow.db'}",
        "tracking.experiment=prerl-bench",
        "tracking.log_samples=0",
        "total_steps=100000",
        "seed=0",
    ]
    workload = model_overrides(model) + (sizes or default_sizes(model)).overrides()
    base = [f"experiment={experiment}"] + where if experiment else where + workload
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose(config_name="config", overrides=base + overrides)
    return OmegaConf.to_object(cfg), OmegaConf.to_container(cfg, resolve=True)


def set_threads(n: int) -> int:
    """Torch intra-op threads for this process (0 keeps torch's default); returns the count in use."""
    import torch

    if n > 0:
        torch.set_num_threads(n)
    return torch.get_num_threads()


class Clock:
    """Wall and CPU seconds since construction."""

    def __init__(self):
        self.wall0, self.cpu0 = time.perf_counter(), time.process_time()

    def read(self) -> tuple[float, float]:
        return time.perf_counter() - self.wall0, time.process_time() - self.cpu0


def peak_memory_mb() -> float:
    """Peak resident memory of this process, or peak CUDA memory when training runs on a GPU."""
    import torch

    if torch.cuda.is_available() and torch.cuda.max_memory_allocated() > 0:
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def environment() -> dict:
    """What a reader needs to judge the numbers: the machine, cores, load, versions, the commit."""
    import torch

    from prerl.models.loading import has_bf16_matrix_units
    from prerl.tracking.fingerprint import cpu_model

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout.strip()

    return {
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        # bf16 autocast is native (AVX-512 BF16, AMX) or emulated: which one decides a bf16 comparison
        "bf16_matrix_units": has_bf16_matrix_units(torch.device("cpu")),
        "load_average_1_5_15min": load_average(),
        "torch": torch.__version__,
        "device": "cuda" if torch.cuda.is_available() else "cpu",
        "git_head": git("rev-parse", "--short", "HEAD"),
        "git_dirty": bool(git("status", "--porcelain", "--untracked-files=no")),
    }


def write_result(name: str, payload: dict, path: Path | None = None) -> Path:
    """Add one run's JSON to the history: ``results/benchmarks/<name>/<UTC time>_<commit>.json`` (or
    ``path``), with the command that made it; the payload carries its ``environment`` (machine, commit)."""
    if path is None:
        env = payload["environment"]
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        path = RESULTS / name / f"{stamp}_{env['git_head']}{'-dirty' * env['git_dirty']}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"benchmark": name, "command": ["python", *sys.argv]} | payload, indent=2) + "\n")
    print(f"\nJSON: {path}")
    return path


def newest_result(name: str) -> Path | None:
    """The newest run of benchmark ``name`` in the history (file names sort by time)."""
    runs = sorted((RESULTS / name).glob("*.json"))
    return runs[-1] if runs else None


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def child_result(command: list[str], what: str, **run) -> dict:
    """Run a benchmark process and return the JSON it prints last; on failure show its stderr's end."""
    done = subprocess.run(command, capture_output=True, text=True, **run)
    if done.returncode != 0:
        sys.stderr.write(done.stderr[-6000:])
        raise SystemExit(f"benchmark child failed: {what}")
    return json.loads(done.stdout.strip().splitlines()[-1])
