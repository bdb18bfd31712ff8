"""Loading the policy and its tokenizer: a Hub/local checkpoint, or the locally built mini model."""

from __future__ import annotations

import contextlib
import inspect
import os
import shutil
import tempfile
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer
from transformers.modeling_layers import GradientCheckpointingLayer

from prerl.config.schema import ModelConfig
from prerl.models.gguf_weights import ensure_gguf_model
from prerl.models.mini_model import ensure_base_model
from prerl.models.rms_norm import use_analytic_rms_norm
from prerl.tracking import policy_model

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device=cuda but torch sees no GPU; use device=cpu or device=auto")
    return torch.device(name)


def model_path(cfg: ModelConfig, cache_dir: str) -> str:
    """Where the weights live; builds the mini base model, or dequantizes a GGUF model, first when it is
    not cached yet."""
    if cfg.path is not None and cfg.path.startswith(("runs:/", "models:/", "mlflow-artifacts:/")):
        return logged_policy(cfg.path, cache_dir)
    if cfg.path is not None:
        return cfg.path
    if cfg.gguf is not None:
        return str(ensure_gguf_model(cfg.gguf, cache_dir))
    assert cfg.mini is not None  # ModelConfig checks that path, gguf or mini is set
    return str(ensure_base_model(cfg.mini, cache_dir))


def logged_policy(uri: str, cache_dir: str) -> str:
    """A policy logged to MLflow (``runs:/<run_id>/policy``, ``models:/<name>/<version>``, an alias, a
    model id), downloaded once from the current tracking store into the cache, as a folder that
    ``from_pretrained`` loads (``prerl.tracking.policy_model``); what a URI names there never changes."""
    import mlflow

    try:
        dest = Path(cache_dir) / "mlflow" / policy_model.cache_key(uri)
    except Exception as err:  # a malformed models:/ URI, an unknown name or alias
        raise ValueError(f"model.path={uri}: {str(err)[:300]}") from err
    if not (dest / "config.json").exists():
        dest.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=dest.parent) as tmp:
            try:
                local = mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=tmp)
            except Exception as err:
                raise ValueError(
                    f"model.path={uri}: cannot download it from {mlflow.get_tracking_uri()}: {str(err)[:300]}"
                ) from err
            folder = policy_model.pretrained_folder(Path(local), uri)
            if dest.exists():
                shutil.rmtree(dest)
            os.replace(folder, dest)
    return str(dest)


def load_policy(cfg: ModelConfig, cache_dir: str, device: torch.device):
    path = model_path(cfg, cache_dir)
    tokenizer = AutoTokenizer.from_pretrained(path)
    tokenizer.padding_side = "left"
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    # transformers' decorated .to() reads as taking a model where it takes a device
    model = AutoModelForCausalLM.from_pretrained(path, dtype=DTYPES[cfg.dtype]).to(device)  # type: ignore[arg-type]
    if cfg.analytic_rms_norm and not cfg.compile:
        use_analytic_rms_norm(model)
    if device.type == "cpu":
        group_kv_heads_in_sdpa()
    if cfg.gradient_checkpointing:  # non-reentrant: gradients reach the weights even when inputs need none
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    return model, tokenizer


def group_kv_heads_in_sdpa() -> None:
    """Let transformers' sdpa attention pass grouped-query heads to torch as they are (``enable_gqa``)
    also when a mask is given, instead of repeating every key/value head in memory first (``repeat_kv``).

    transformers does so only without a mask, a CUDA kernel's condition; torch's CPU kernels take masked
    GQA, and on the mini model's update it measured 0.95x the forward and backward's CPU time (docs/LOG.md,
    round 9845269 → e59db59). The switch is transformers' own environment variable, read at every attention call,
    so it holds for the whole process (CPU runs only; a user's own setting wins)."""
    os.environ.setdefault("TRANSFORMERS_SDPA_FORCE_GQA", "1")


def compile_decoder_layers(model: torch.nn.Module) -> None:
    """``torch.compile`` every decoder layer of ``model`` (``model.compile``), for its updates and
    scoring passes: inductor fuses a layer's elementwise ops (norms, rotary embedding, SiLU, residual
    adds and their backward), which eagerly run one pass over memory each (docs/performance.md#where-the-time-goes-now).

    Dynamic shapes, so that new batch and sequence lengths reuse the graphs. The rest of the model
    (embedding, final norm, LM head, the chunked log-softmax) stays eager, and so does the rollout
    (``eager``), whose shapes change at every token. Compile a model after copying it (``deepcopy``
    would copy the compiled calls of the original's layers) and after wrapping it."""
    layers = [m for m in model.modules() if isinstance(m, GradientCheckpointingLayer)]
    if not layers:
        raise ValueError(f"model.compile=true: {type(model).__name__} has no transformers decoder layers to compile")
    # One set of graphs serves every layer: their index (which KV-cache layer they read) becomes an
    # input instead of a constant that recompiles the graphs per layer. The variants that remain (with
    # and without gradient, frozen reference weights, a mask or none, one row or more, shared-prompt
    # or whole rows) exceed dynamo's default of 8 graphs per function in a sharded run with a KL
    # reference, after which it runs the layers eagerly. Both are process-wide dynamo settings.
    torch._dynamo.config.allow_unspec_int_on_nn_module = True
    torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 32)
    for layer in layers:
        layer.compile(dynamic=True)


def eager():
    """Run whatever is compiled eagerly within this context (decoding: its shapes change every token)."""
    return torch.compiler.set_stance("force_eager")


def has_bf16_matrix_units(device: torch.device) -> bool:
    """Whether ``device`` multiplies bf16 matrices in hardware: a CUDA GPU that supports bf16, or a CPU
    with AMX tiles or AVX-512 BF16 (elsewhere torch emulates bf16 matmuls, slower than fp32)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return device.type == "cpu" and (torch.cpu._is_amx_tile_supported() or torch.cpu._is_avx512_bf16_supported())


def compute_dtype(cfg: ModelConfig, device: torch.device) -> str | None:
    """``model.autocast`` on ``device``: ``auto`` is bfloat16 where the device has bf16 matrix units, else
    none (fp32 compute)."""
    if cfg.autocast == "auto":
        return "bfloat16" if has_bf16_matrix_units(device) else None
    return cfg.autocast


def autocast(cfg: ModelConfig, device: torch.device):
    """The compute-dtype context of forward and backward passes (``model.autocast``; none when null)."""
    dtype = compute_dtype(cfg, device)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=DTYPES[dtype])


def context_token_id(tokenizer, token: str) -> int:
    """The id of PreRL's context token c; it must be a single known token of the vocabulary."""
    ids = tokenizer(token, add_special_tokens=False)["input_ids"]
    if len(ids) != 1 or ids[0] == tokenizer.unk_token_id:
        raise ValueError(f"model.context_token={token!r} is not a single token of this tokenizer ({ids})")
    return ids[0]


def cache_kwargs(model, cache) -> dict:
    """The forward keywords that fill and read the KV cache ``cache``: transformers renamed
    ``past_key_values`` to ``cache`` during 5.x, and the vLLM venv has an older 5.x."""
    name = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
    return {name: cache, "use_cache": True}
