"""A randomly initialised model of a shipped ``config.json``'s shape, for the cost-growth benchmark.

``make bench-growth`` times a step on a model of Qwen3-0.6B's shape (28 layers, width 1024, 16/8
heads, a 151,936-token vocabulary) without downloading it: the architecture comes from
``prerl/model_configs/Qwen/Qwen3-0.6B/config.json`` and the weights are drawn by transformers' own
initialiser from a fixed seed. What a step costs depends on the shape alone, not on what the weights
say. The tokenizer (and so the prompts and the task, ``data=word_problems``) is SmolLM2's: its ids
all lie inside the larger vocabulary, and the ids it lacks, which a random model samples, decode to
nothing. The folder is built once into the cache (``prerl.models.build_cache.build_once``): about 2.4 GB of fp32
weights for Qwen3-0.6B.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja")
SEED = 0


def shipped_config(hub_id: str):
    """The transformers config of a shipped ``config.json`` (prerl/model_configs/<hub_id>/)."""
    from transformers import AutoConfig

    from prerl.config.schema import MODEL_CONFIGS

    path = MODEL_CONFIGS / hub_id / "config.json"
    if not path.is_file():
        raise SystemExit(f"{hub_id}: no shipped config.json at {path}")
    return AutoConfig.from_pretrained(path.parent)


def build_model(hub_id: str, device: str = "cpu", seed: int = SEED):
    """The causal LM of ``hub_id``'s shipped config with random weights (fp32), on ``device``
    (``"meta"`` builds the shapes alone: no memory, no initialisation)."""
    import torch
    from transformers import AutoModelForCausalLM

    config = shipped_config(hub_id)
    torch.manual_seed(seed)
    with torch.device(device):
        return AutoModelForCausalLM.from_config(config, dtype=torch.float32)


def tokenizer_folder(cache_dir: str) -> Path:
    """SmolLM2-135M-Instruct's cached folder (dequantized from its GGUF file first when missing)."""
    from common import compose_config

    from prerl.models.loading import model_path

    with tempfile.TemporaryDirectory() as tmp:
        cfg, _ = compose_config([], Path(tmp), model="smollm2_135m")
    return Path(model_path(cfg.model, cache_dir))


def shaped_model_folder(hub_id: str, cache_dir: str) -> Path:
    """The cached transformers folder of ``hub_id``'s random-weight model with SmolLM2's tokenizer."""
    from prerl.models.build_cache import build_once

    folder = Path(cache_dir) / "shaped" / f"{hub_id.replace('/', '--')}-seed{SEED}"
    return build_once(folder, lambda out: _build(hub_id, cache_dir, out))


def _build(hub_id: str, cache_dir: str, out: Path) -> None:
    """Weights and tokenizer into ``out``, then its build record last: ``build_once`` takes a folder
    without the record for an unfinished build and builds it again."""
    from prerl.tracking.fingerprint import BUILD_INFO

    source = tokenizer_folder(cache_dir)
    build_model(hub_id).save_pretrained(out)
    for name in TOKENIZER_FILES:
        if (source / name).is_file():
            shutil.copy2(source / name, out / name)
    info = {"config": f"prerl/model_configs/{hub_id}/config.json", "seed": SEED, "tokenizer": str(source)}
    (out / BUILD_INFO).write_text(json.dumps(info, indent=2))
