"""What decides whether two runs should agree to the float: machine, packages, threads, determinism.

Runs on the same machine, with the same packages, thread count and weights, repeat bit for bit on
CPU; anything else differing here makes them agree only statistically (docs/reproducibility.md).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
from importlib import metadata
from pathlib import Path

import torch

BUILD_INFO = "prerl_build.json"  # written by prerl.models.mini_model beside a mini build's weights
PACKAGES = ("prerl", "torch", "transformers", "tokenizers", "vllm", "math-verify", "numpy")


def sha256_file(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict[str, str]:
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    return {
        "cpu": cpu_model(),
        "cpu_count": str(os.cpu_count()),
        "gpu": gpu,
        "torch_threads": str(torch.get_num_threads()),
        "platform": platform.platform(),
        "python": platform.python_version(),
    }


def packages() -> dict[str, str]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def determinism() -> dict[str, str]:
    return {
        "deterministic_algorithms": str(torch.are_deterministic_algorithms_enabled()),
        "cudnn_deterministic": str(torch.backends.cudnn.deterministic),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "unset"),
    }


def weights_id(model_dir: str) -> str:
    """The policy's starting weights: the sha256 a mini build recorded, else of a local folder's weight
    files, else the Hub id (its revision is logged separately when transformers resolved one)."""
    folder = Path(model_dir)
    recorded = (
        json.loads((folder / BUILD_INFO).read_text()).get("weights_sha256") if (folder / BUILD_INFO).exists() else None
    )
    if recorded:  # builds cached by older versions recorded no hash: hashed below
        return recorded
    files = sorted(folder.glob("*.safetensors")) + sorted(folder.glob("*.bin")) if folder.is_dir() else []
    if files:
        combined = hashlib.sha256("".join(sha256_file(f) for f in files).encode()).hexdigest()
        return combined if len(files) > 1 else sha256_file(files[0])
    return f"hub:{model_dir}"


def build_sources(model_dir: str) -> dict[str, str]:
    """What a cached build was made from, when it records it: the GGUF file's sha256 (prerl.models.gguf_weights)."""
    info = Path(model_dir) / BUILD_INFO
    recorded = json.loads(info.read_text()) if info.is_file() else {}
    return {"repro.base_gguf_sha256": recorded["gguf_sha256"]} if "gguf_sha256" in recorded else {}


def run_fingerprint(model_dir: str, revision: str | None = None) -> dict[str, str]:
    """Flat ``repro.*`` tags for a run's MLflow record."""
    tags = {"repro.base_weights": weights_id(model_dir)} | build_sources(model_dir)
    if revision:
        tags["repro.base_revision"] = revision
    tags |= {f"repro.{k}": v for k, v in machine().items()}
    tags |= {f"repro.version.{k}": v for k, v in packages().items()}
    tags |= {f"repro.{k}": v for k, v in determinism().items()}
    return tags
