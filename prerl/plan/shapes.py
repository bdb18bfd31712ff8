"""The architecture a memory plan needs, read from a model's ``config.json`` without its weights.

Parameter counts come from the model itself, built on torch's meta device (shapes, no storage), so
every tensor transformers would create is counted, in the groups the plan charges separately: one
decoder layer (FSDP2's unit), the rest (the root unit: embeddings, final norm, an untied LM head), and
the matrices of ``nn.Linear`` modules (what autocast keeps a low-precision copy of).

Where the config comes from (``model_config``), in order: the mini recipe (its shipped or cached
build's ``config.json``, else the recipe itself); a local folder's or a shipped Hub model's
``config.json`` (``prerl.config.schema.config_json``); a policy logged to MLflow that is already in the cache;
a Hub model already in the Hugging Face cache. Nothing is downloaded.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import torch
from torch import nn
from transformers import AutoConfig, AutoModelForCausalLM, PretrainedConfig

from prerl.config.schema import ModelConfig, config_json

# Decoder layers whose activations prerl/plan/memory.py derives (pre-norm attention with grouped
# key/value heads and a gated MLP; Qwen3 adds RMSNorm on queries and keys). Others get a note.
DERIVED_FOR = ("qwen3", "qwen2", "llama")


class NoModelConfig(ValueError):
    """The model's architecture cannot be known without downloading it."""


@dataclass(frozen=True)
class ModelShape:
    """What the plan reads of a causal LM: its widths and its parameters in the groups it charges."""

    name: str
    model_type: str
    vocab: int
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    intermediate: int
    tied: bool  # the LM head is the input embedding
    qk_norm: bool  # RMSNorm on each query and key head (Qwen3)
    max_positions: Optional[int]
    params: int  # every parameter once (a tied matrix once)
    layer_params: int  # one decoder layer
    layer_linear_params: int  # one decoder layer's nn.Linear weights and biases
    linear_params: int  # weights and biases of nn.Linear modules (a tied head's matrix counted here)
    head_params: int  # the LM head's own matrix: V × H when untied, 0 when tied
    tensor_shapes: tuple[tuple[int, ...], ...]  # every parameter's shape, in model order

    @property
    def root_params(self) -> int:
        """Everything outside the decoder layers: embeddings, final norm, an untied head (FSDP2's root unit)."""
        return self.params - self.layers * self.layer_params

    @property
    def trunk_params(self) -> int:
        """The transformer without its LM head (a critic's trunk, prerl/train/critic.py)."""
        return self.params - self.head_params

    @property
    def largest_tensor(self) -> int:
        return max(math.prod(s) for s in self.tensor_shapes)

    def shard(self, ranks: int) -> int:
        """Parameters one rank holds under FSDP2: each tensor's dim 0 split in ``ranks`` equal padded rows
        (rank 0's share, the largest; a replicated model is ``shard(1)``)."""
        return sum(-(-s[0] // ranks) * math.prod(s[1:]) for s in self.tensor_shapes)

    @property
    def derived(self) -> bool:
        return self.model_type in DERIVED_FOR


def shape_of(config: PretrainedConfig, name: str) -> ModelShape:
    """Build the model of ``config`` on the meta device and read its parameter groups."""
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    params = dict(model.named_parameters())  # a tied matrix appears once
    linear = {id(p) for m in model.modules() if isinstance(m, nn.Linear) for p in m.parameters()}
    layer_names = set(getattr(model, "_no_split_modules", None) or [])
    layer = next(m for m in model.modules() if type(m).__name__ in layer_names)
    head = model.get_output_embeddings()
    tied = head.weight is model.get_input_embeddings().weight
    text = config.get_text_config()
    heads = text.num_attention_heads
    return ModelShape(
        name=name,
        model_type=text.model_type,
        vocab=text.vocab_size,
        hidden=text.hidden_size,
        layers=text.num_hidden_layers,
        heads=heads,
        kv_heads=getattr(text, "num_key_value_heads", None) or heads,
        head_dim=getattr(text, "head_dim", None) or text.hidden_size // heads,
        intermediate=text.intermediate_size,
        tied=tied,
        qk_norm=any(n.endswith("q_norm") for n, _ in layer.named_modules()),
        max_positions=getattr(text, "max_position_embeddings", None),
        params=sum(p.numel() for p in params.values()),
        layer_params=sum(p.numel() for p in layer.parameters()),
        layer_linear_params=sum(p.numel() for m in layer.modules() if isinstance(m, nn.Linear) for p in m.parameters()),
        linear_params=sum(p.numel() for p in params.values() if id(p) in linear),
        head_params=0 if tied else head.weight.numel(),
        tensor_shapes=tuple(tuple(p.shape) for p in params.values()),
    )


def shape_from_dict(config: dict[str, Any], name: str = "config") -> ModelShape:
    """The shape of a ``config.json``'s contents (e.g. a model described in a test)."""
    return shape_of(AutoConfig.for_model(**config), name)


def model_config(cfg: ModelConfig, cache_dir: str) -> tuple[PretrainedConfig, str]:
    """The transformers config of the policy ``cfg`` and where it was read; ``NoModelConfig`` if only
    a download could tell."""
    if cfg.path is None and cfg.gguf is not None:  # a GGUF file's model: its shipped config.json
        found = config_json(cfg.gguf.model) if cfg.gguf.model else None
        if found is None:
            raise NoModelConfig(f"model.gguf.model={cfg.gguf.model!r}: no config.json of it in prerl/model_configs")
        return AutoConfig.from_pretrained(found.parent), str(found)
    if cfg.path is None:
        assert cfg.mini is not None  # ModelConfig checks that path, gguf or mini is set
        return _mini_config(cfg, cache_dir)
    found = config_json(cfg.path) or _cached_download(cfg.path, cache_dir)
    if found is None:
        raise NoModelConfig(
            f"model.path={cfg.path}: its config.json is neither a local folder's, shipped "
            "(prerl/model_configs), in the MLflow download cache nor in the Hugging Face cache"
        )
    return AutoConfig.from_pretrained(found.parent), str(found)


def _mini_config(cfg: ModelConfig, cache_dir: str) -> tuple[PretrainedConfig, str]:
    from prerl.models.mini_model import SHIPPED, build_dir, recipe_config

    assert cfg.mini is not None
    for folder in (build_dir(cfg.mini, SHIPPED), build_dir(cfg.mini, cache_dir)):
        if (folder / "config.json").is_file():
            return AutoConfig.from_pretrained(folder), str(folder / "config.json")
    # not built yet: the recipe's vocabulary is the most tokens its tokenizer can have
    return recipe_config(cfg.mini, cfg.mini.vocab_size), f"the {cfg.mini.name} recipe (model.mini)"


def _cached_download(path: str, cache_dir: str) -> Optional[Path]:
    """A logged policy already downloaded (prerl/models/loading.py ``logged_policy``), or a Hub model's config
    already in the Hugging Face cache."""
    if ":/" in path:
        logged = Path(cache_dir) / "mlflow" / path.split(":/", 1)[1].strip("/") / "config.json"
        return logged if logged.is_file() else None
    from huggingface_hub import try_to_load_from_cache

    hit = try_to_load_from_cache(path, "config.json")
    return Path(hit) if isinstance(hit, str) else None
