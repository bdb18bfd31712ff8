"""Typed configuration: the schema behind ``conf/``, validated before any model is loaded.

Every Hydra group (``algorithm``, ``objective``, ``model``, ``data``, ``rollout``, ``eval``,
``tracking``) fills one of the dataclasses below; unknown keys and wrong types are rejected by
OmegaConf against this schema, and ``__post_init__`` checks the values, raising a one-line
``ConfigError``. Names of registered parts are plain strings here, checked with the chosen parts' own
knobs by ``prerl.launch.choices.check_choices``: this module imports nothing but the standard library and
``prerl.config.enums``, so a config is cheap to build and no plug-in has to exist before it. Every field
carries its help (units, allowed values) as ``metadata["help"]``: the source of ``python train.py
--help`` and of the reference in docs/configuration.md (prerl/config/docs.py). Units live in the names:
``*_prompts`` counts prompts, ``*_samples`` sampled responses, ``*_tokens`` tokens.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

# The schema's closed choices live in a leaf module (re-exported here); open choices (losses,
# estimators, aggregation, sample selection, KL estimators, strategies) are plain names, checked
# against their registries by prerl.launch.choices.check_choices once the plug-ins have loaded.
from prerl.config.enums import KLPlacement, Space


class ConfigError(ValueError):
    """A config value that cannot run; the message is one line naming the key, the value and what is allowed."""


STRATEGY_NAMES = ("replicate", "fsdp2")  # how ranks hold the models: the keys of prerl.parallel.distributed.STRATEGIES


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)


# A Hub repo id is NAME or ORG/NAME and a URI has a scheme (runs:/..., s3://...); anything else that
# names a path is read from disk.
_LOCAL_PREFIXES = ("/", "./", "../", "~")
_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:/")


def looks_local(path: str) -> bool:
    """True when ``path`` can only be a folder on disk (absolute, ./, ../, ~, or more than one ``/``),
    never for a URI such as ``runs:/<run_id>/policy``."""
    if _URI.match(path):
        return False
    return path.startswith(_LOCAL_PREFIXES) or path in (".", "..") or path.count("/") > 1 or os.path.exists(path)


# config.json of the Hub models the presets name, stored under their Hub id (prerl/model_configs/SOURCE.md)
MODEL_CONFIGS = Path(__file__).parents[1] / "model_configs"


def config_json(path: str) -> Optional[Path]:
    """The ``config.json`` that describes ``model.path`` without downloading anything: a local folder's
    own, else the shipped copy of a Hub id's (``prerl/model_configs/<id>/config.json``); None if neither."""
    local = Path(os.path.expanduser(path)) / "config.json"
    if local.is_file():
        return local
    shipped = MODEL_CONFIGS / path / "config.json"
    return shipped if not looks_local(path) and shipped.is_file() else None


def _check_exists(key: str, path: Optional[str], what: str = "file or folder") -> None:
    if path is not None:
        _check(os.path.exists(os.path.expanduser(path)), f"{key}={path!r}: no such {what}")


@dataclass
class MiniModelConfig:
    """Recipe of the locally pre-trained mini base model (ignored for Hub models)."""

    name: str = field(
        default="mini",
        metadata={
            "help": "name of the recipe; the cache folder and the shipped "
            "copy are looked up by it (mini, mini_styles, micro ship)"
        },
    )
    task: str = field(
        default="addition",
        metadata={
            "help": "what the corpus teaches: addition (prerl/data/mini_task.py: one method, with the flaws below) or "
            "styles (prerl/data/mini_styles.py: three prompt-independent solution styles at fixed rates)"
        },
    )
    seed: int = field(default=0, metadata={"help": "seed of the tokenizer, corpus and initial weights"})
    vocab_size: int = field(default=400, metadata={"help": "byte-level BPE vocabulary, in tokens"})
    hidden_size: int = field(default=128, metadata={"help": "width of the residual stream"})
    intermediate_size: int = field(default=384, metadata={"help": "width of the MLP"})
    num_layers: int = field(default=4, metadata={"help": "decoder layers"})
    num_heads: int = field(default=4, metadata={"help": "attention (query) heads"})
    num_kv_heads: int = field(default=2, metadata={"help": "key/value heads (grouped-query attention)"})
    max_positions: int = field(
        default=512, metadata={"help": "longest sequence in tokens; data.max_prompt_tokens + max_new_tokens must fit"}
    )
    corpus_documents: int = field(default=30000, metadata={"help": "pre-training documents"})
    corpus_min_operands: int = field(default=2, metadata={"help": "fewest numbers added in a corpus problem"})
    corpus_max_operands: int = field(default=3, metadata={"help": "most numbers added in a corpus problem"})
    corpus_min_digits: int = field(default=1, metadata={"help": "fewest digits of a corpus operand"})
    corpus_max_digits: int = field(default=3, metadata={"help": "most digits of a corpus operand"})
    prompt_free_fraction: float = field(
        default=0.2,
        metadata={
            "help": "share of documents with the solution alone, no prompt (what log π(y | c) is trained on), in [0, 1]"
        },
    )
    slip_rate: float = field(default=0.12, metadata={"help": "per column: probability the sum is off by one or two"})
    drop_carry_rate: float = field(
        default=0.2, metadata={"help": "per column with a carry: probability it is forgotten"}
    )
    repair_rate: float = field(default=0.35, metadata={"help": "per mistake: probability it is noticed and redone"})
    recheck_rate: float = field(default=0.05, metadata={"help": "per correct column: probability it is re-checked"})
    train_steps: int = field(default=560, metadata={"help": "pre-training optimizer steps"})
    batch_size: int = field(default=64, metadata={"help": "pre-training documents per step"})
    lr: float = field(default=3e-3, metadata={"help": "pre-training AdamW learning rate"})

    def __post_init__(self) -> None:
        _check(self.task in ("addition", "styles"), f"model.mini.task={self.task!r}: choose addition or styles")

    @staticmethod
    def micro() -> "MiniModelConfig":
        """A tiny variant for tests (conf/model/micro.yaml): one-digit sums, builds in under a minute,
        and answers about one in eight correctly, so groups have mixed rewards."""
        return MiniModelConfig(
            name="micro",
            hidden_size=64,
            intermediate_size=128,
            num_layers=2,
            num_heads=2,
            num_kv_heads=1,
            vocab_size=300,
            corpus_documents=3000,
            corpus_min_operands=2,
            corpus_max_operands=2,
            corpus_min_digits=1,
            corpus_max_digits=1,
            train_steps=200,
            batch_size=32,
        )


_SHA256 = re.compile(r"^[0-9a-f]{64}$")


@dataclass
class GGUFConfig:
    """Pretrained weights shipped as a GGUF file inside an installed Python package (prerl/models/gguf_weights.py):
    dequantized once into the cache, pinned by two digests."""

    package: str = field(
        default="", metadata={"help": "the installed Python package (import name) that holds the file"}
    )
    file: str = field(default="", metadata={"help": "the GGUF file's name inside the package"})
    sha256: str = field(default="", metadata={"help": "sha256 of the GGUF file, checked before it is dequantized"})
    weights_sha256: Optional[str] = field(
        default=None,
        metadata={
            "help": "digest of the dequantized tensors (prerl.models.gguf_weights.tensor_digest), checked after "
            "dequantizing and at every load; null = recorded, not checked"
        },
    )
    install: str = field(default="", metadata={"help": "the command that installs the package (said when missing)"})
    model: str = field(
        default="",
        metadata={
            "help": "the Hub id of the model the file holds; its config.json ships in prerl/model_configs/ "
            "(length checks and the memory plan without loading it)"
        },
    )

    def __post_init__(self) -> None:
        _check(bool(self.package and self.file), "model.gguf: set its package and file")
        _check(bool(_SHA256.match(self.sha256)), f"model.gguf.sha256={self.sha256!r}: must be 64 hex digits")
        _check(
            self.weights_sha256 is None or bool(_SHA256.match(self.weights_sha256)),
            f"model.gguf.weights_sha256={self.weights_sha256!r}: must be null or 64 hex digits",
        )
        # find_spec reads the package's location without importing it (no torch, nothing heavy)
        from importlib.util import find_spec

        _check(
            find_spec(self.package) is not None,
            f"model.gguf.package={self.package}: not installed; {self.install or 'pip install it'}",
        )

    def cache_folder(self, cache_dir: str) -> str:
        """Where the dequantized model is cached: one folder per GGUF file content."""
        return os.path.join(cache_dir, "gguf", f"{os.path.splitext(self.file)[0]}-{self.sha256[:10]}")


@dataclass
class ModelConfig:
    """The policy. ``path`` is a Hub id or a local folder; ``mini`` builds one when ``path`` is null."""

    path: Optional[str] = field(
        default=None,
        metadata={
            "help": "a Hub repo id (NAME or ORG/NAME) or a local folder (absolute, ./, ../, ~ or with more than one /: "
            "must exist); null = the mini model of model.mini"
        },
    )
    mini: Optional[MiniModelConfig] = field(
        default_factory=MiniModelConfig,
        metadata={"help": "recipe of the locally built base model, used when model.path and model.gguf are null"},
    )
    gguf: Optional[GGUFConfig] = field(
        default=None,
        metadata={
            "help": "weights from a GGUF file in an installed package (model=smollm2_135m), used when model.path is null"
        },
    )
    dtype: str = field(
        default="float32",
        metadata={"help": "float32 | bfloat16 | float16: the trained weights and the optimizer state"},
    )
    # bf16 weights under AdamW lose updates below their resolution (lr 1e-6 on weights ~1e-2: all of
    # them), so the GPU configs keep float32 weights and compute in bfloat16, as verl's FSDP mixed precision.
    autocast: Optional[str] = field(
        default=None,
        metadata={
            "help": "null | bfloat16 | float16 | auto: compute dtype of forward/backward (torch.autocast), weights "
            "stay in dtype; auto = bfloat16 where the device has bf16 matrix units (AMX, AVX-512 BF16, CUDA), "
            "else null"
        },
    )
    # Qwen3 has no BOS and the paper uses <|im_start|>.
    context_token: str = field(
        default="<|im_start|>", metadata={"help": "PreRL's single context token c in log π(y | c)"}
    )
    chat_template_kwargs: dict[str, Any] = field(
        default_factory=dict,
        metadata={"help": "extra arguments of the tokenizer's chat template (Qwen3: enable_thinking)"},
    )
    gradient_checkpointing: bool = field(
        default=False,
        metadata={"help": "recompute activations in the backward pass: less memory, about a third more compute"},
    )
    # Inductor fuses what runs eagerly as one memory pass per op; on the mini model (CPU) the compile
    # costs more than a short run saves (docs/LOG.md, round e59db59 → f4712cc), so it is off by default.
    compile: bool = field(
        default=False,
        metadata={
            "help": "torch.compile every decoder layer (dynamic shapes) of the policy, reference and critic for "
            "updates and scoring passes; the rollout stays eager. Same loss to rounding; compiles at the first step"
        },
    )

    analytic_rms_norm: bool = field(
        default=True,
        metadata={
            "help": "RMSNorm modules (Qwen3, Qwen2, Llama) as one autograd function with a hand-written backward "
            "(prerl/models/rms_norm.py): fewer elementwise passes in updates and scoring, same values to rounding. "
            "Not combined with model.compile, which fuses the norms itself"
        },
    )

    def __post_init__(self) -> None:
        _check(
            self.path is not None or self.gguf is not None or self.mini is not None,
            "model: set model.path, model.gguf or model.mini",
        )
        _check(
            self.dtype in ("float32", "bfloat16", "float16"),
            f"model.dtype={self.dtype!r}: choose one of float32, bfloat16, float16",
        )
        _check(
            self.autocast in (None, "bfloat16", "float16", "auto"),
            f"model.autocast={self.autocast!r}: choose null, bfloat16, float16 or auto",
        )
        if self.path is not None and looks_local(self.path):
            _check_exists("model.path", self.path, "folder (a local path; a Hub id is NAME or ORG/NAME)")

    def name(self) -> str:
        """What the run trained, for tags and messages: the path or Hub id, the GGUF file's model, or the
        mini recipe's name."""
        if self.path is not None:
            return self.path
        if self.gguf is not None:
            return self.gguf.model
        return self.mini.name  # type: ignore[union-attr]  # __post_init__: one of the three is set

    def max_positions(self) -> Optional[int]:
        """The longest sequence the model takes, known without loading it: the mini recipe's, or the
        ``config.json`` of a local folder, of a shipped Hub model or of a GGUF file's model
        (``config_json``); None for any other Hub id (not downloaded to check)."""
        if self.path is None and self.gguf is None:
            return self.mini.max_positions if self.mini is not None else None
        found = config_json(self.path if self.path is not None else self.gguf.model)  # type: ignore[union-attr]
        if found is None:
            return None
        with open(found) as f:
            return json.load(f).get("max_position_embeddings")


@dataclass
class DataConfig:
    """Training prompts and the in-training eval sets. ``mini`` generates the synthetic task."""

    name: str = field(
        default="mini",
        metadata={
            "help": "mini (the mini models' addition task) | word_problems (the real model's task, "
            "prerl/data/word_problems.py) | math (MATH train, prerl.data.eval_sets)"
        },
    )
    path: Optional[str] = field(
        default=None, metadata={"help": "data=math: a local JSONL / Parquet file instead of the Hub (must exist)"}
    )
    train_problems: int = field(default=4000, metadata={"help": "synthetic tasks: training problems"})
    test_problems: int = field(default=64, metadata={"help": "synthetic tasks: in-distribution test problems"})
    ood_problems: int = field(default=64, metadata={"help": "synthetic tasks: out-of-distribution test problems"})
    seed: int = field(
        default=1234, metadata={"help": "synthetic tasks: seed of the problems (independent of the run's seed)"}
    )
    # In-distribution difficulty (train and test) and the harder out-of-distribution test. The
    # default mini base model samples ~40% correct in-distribution and ~7% out of it.
    min_operands: int = field(
        default=2,
        metadata={"help": "synthetic tasks: fewest numbers per problem (train and test; word_problems: steps + 1)"},
    )
    max_operands: int = field(
        default=2,
        metadata={"help": "synthetic tasks: most numbers per problem (train and test; word_problems: steps + 1)"},
    )
    min_digits: int = field(
        default=2, metadata={"help": "synthetic tasks: fewest digits of an operand (train and test)"}
    )
    max_digits: int = field(default=3, metadata={"help": "synthetic tasks: most digits of an operand (train and test)"})
    ood_min_operands: int = field(
        default=3, metadata={"help": "synthetic tasks: fewest numbers per problem (ood test; word_problems: steps + 1)"}
    )
    ood_max_operands: int = field(
        default=3, metadata={"help": "synthetic tasks: most numbers per problem (ood test; word_problems: steps + 1)"}
    )
    ood_min_digits: int = field(default=2, metadata={"help": "synthetic tasks: fewest digits of an operand (ood test)"})
    ood_max_digits: int = field(default=2, metadata={"help": "synthetic tasks: most digits of an operand (ood test)"})
    # Prompts are tokenised only when the data loads, long after the config is checked, so the length
    # check reserves this many positions for them (mini prompts are at most 27 tokens; a test keeps it so).
    system_prompt: Optional[str] = field(
        default=None,
        metadata={
            "help": "word_problems: a system turn before each question; null = none (a chat template may add "
            "its own default)"
        },
    )
    max_prompt_tokens: int = field(
        default=64,
        metadata={
            "help": "longest prompt in tokens, reserved when checking that prompt + max_new_tokens fit the model"
        },
    )

    def __post_init__(self) -> None:
        _check(self.train_problems > 0, f"data.train_problems={self.train_problems}: must be > 0")
        _check(
            self.min_operands <= self.max_operands and self.min_digits <= self.max_digits,
            "data: min_* must not exceed max_*",
        )
        _check(self.max_prompt_tokens >= 1, f"data.max_prompt_tokens={self.max_prompt_tokens}: must be >= 1")
        _check_exists("data.path", self.path, "file")


@dataclass
class VLLMConfig:
    """Settings of the vLLM engine (``rollout=vllm``), colocated with training on the same GPUs."""

    tensor_parallel_size: int = field(
        default=1, metadata={"help": "GPUs per engine: torchrun ranks are grouped this many at a time"}
    )
    gpu_memory_utilization: float = field(
        default=0.3, metadata={"help": "share of each GPU for vLLM's weights and KV cache, in (0, 1]"}
    )
    # The model's own limit (40,960 positions for Qwen3) makes vLLM reserve KV cache for a sequence the run
    # never asks for, and at a small gpu_memory_utilization it then refuses to start.
    max_model_len: Optional[int] = field(
        default=None,
        metadata={
            "help": "longest prompt + response in tokens; null = what the run needs: data.max_prompt_tokens + the "
            "longer of rollout.max_new_tokens and eval.max_new_tokens"
        },
    )
    sleep: bool = field(
        default=True,
        metadata={"help": "release weights and KV cache during the update where vLLM supports it (not CPU)"},
    )
    enforce_eager: bool = field(default=False, metadata={"help": "no CUDA graphs: faster start-up, slower decoding"})
    # Not the weights' model.dtype: float32 weights (the Qwen3 configs') would double the engine's memory
    # and rule out vLLM's flash-attention backends.
    dtype: Optional[str] = field(
        default=None,
        metadata={
            "help": "the engine's weights and compute (bfloat16 | float16 | float32); null = the run's compute "
            "dtype: model.autocast, else model.dtype"
        },
    )
    seed: int = field(
        default=0, metadata={"help": "the engine's sampling seed (conf/rollout/vllm.yaml: the run's seed)"}
    )

    def __post_init__(self) -> None:
        _check(
            self.tensor_parallel_size >= 1,
            f"rollout.vllm.tensor_parallel_size={self.tensor_parallel_size}: must be >= 1",
        )
        _check(
            0 < self.gpu_memory_utilization <= 1,
            f"rollout.vllm.gpu_memory_utilization={self.gpu_memory_utilization}: must be in (0, 1]",
        )
        _check(
            self.max_model_len is None or self.max_model_len >= 1,
            f"rollout.vllm.max_model_len={self.max_model_len}: must be null or >= 1",
        )


@dataclass
class RolloutCorrectionConfig:
    """Importance weights for responses drawn by a sampler other than the trainer's model
    (prerl/algo/rollout_correction.py): the weight of each token's policy-gradient loss, from π_old / π_sampler."""

    name: str = field(
        default="none",
        metadata={
            "help": "a key of prerl.algo.rollout_correction.ROLLOUT_CORRECTIONS: none | tis (token-level truncated IS, "
            "weight min(r_t, cap)) | mis (sequence-level masked IS, weight r_seq inside [lower, upper], else 0); "
            "conf/rollout/vllm.yaml: tis"
        },
    )
    cap: float = field(
        default=2.0,
        metadata={
            "help": "tis: C of min(π_old/π_sampler, C) per token, >= 1 (Yao et al. 2025 and verl: 2); every "
            "correction logs the share of tokens above it (train/rollout_is/beyond_cap_frac)"
        },
    )
    lower: float = field(
        default=0.0,
        metadata={"help": "mis: the sequence ratio's lower bound, in [0, 1] (0: none; TRL's default)"},
    )
    upper: float = field(
        default=3.0, metadata={"help": "mis: the sequence ratio's upper bound, >= 1 (TRL's default: 3)"}
    )
    measure: bool = field(
        default=False,
        metadata={
            "help": "with name=none: still score the trainer's log-probs of each rollout against the sampler's and "
            "log train/rollout_is/* (one more forward pass per step); always done when a correction is chosen"
        },
    )

    def __post_init__(self) -> None:
        # the mismatch metrics compare every token's ratio with ``cap``, whichever correction is chosen;
        # each correction's own ranges are checked with it (prerl.launch.choices.check_choices)
        _check(self.cap > 0, f"rollout.correction.cap={self.cap}: must be > 0")


@dataclass
class RolloutConfig:
    """Sampling of responses. ``engine`` is the name of a registered rollout engine."""

    engine: str = field(
        default="hf",
        metadata={"help": "a registered rollout engine: hf (transformers), vllm, oracle, shuffled_oracle (checks)"},
    )
    samples_per_prompt: int = field(default=8, metadata={"help": "responses sampled per prompt (the group size)"})
    temperature: float = field(
        default=1.0, metadata={"help": "sampling temperature, > 0; log-probs are scored at it too"}
    )
    top_p: float = field(default=1.0, metadata={"help": "nucleus sampling mass, in (0, 1]"})
    max_new_tokens: int = field(
        default=96,
        metadata={"help": "longest response in tokens; data.max_prompt_tokens + it must fit the model's positions"},
    )
    batch_samples: int = field(
        default=256, metadata={"help": "sequences generated together (transformers engine; also the eval chunk)"}
    )
    # The transformers engine preallocates its KV cache for every sequence of a call at its full length
    # (prompt + max_new_tokens), so a call is bounded in positions, not only in sequences: 8 prompts × 32
    # samples × 8,192 new tokens would be hundreds of GB for a 4B model. 2^17 positions hold the mini
    # configs' calls whole (256 × 160) and are ~19 GB of bf16 KV cache for Qwen3-4B (36 layers × 8 KV
    # heads × 128 dims × keys and values × 2 bytes per position).
    batch_tokens: int = field(
        default=131072,
        metadata={
            "help": "transformers engine: most KV-cache positions one generate call holds, sequences × (prompt + "
            "max_new_tokens); a call takes fewer prompts when they would exceed it"
        },
    )
    plain_decode: bool = field(
        default=True,
        metadata={
            "help": "transformers engine: decode Qwen3 and Llama models with prerl's plain-op step (faster on small "
            "models; logits equal to rounding); false = the model's own forward at every token"
        },
    )
    vllm: VLLMConfig = field(default_factory=VLLMConfig, metadata={"help": "the vLLM engine (rollout=vllm)"})
    correction: RolloutCorrectionConfig = field(
        default_factory=RolloutCorrectionConfig,
        metadata={"help": "sampler–trainer mismatch: its metrics and its importance-sampling correction"},
    )

    def __post_init__(self) -> None:
        _check(self.samples_per_prompt >= 1, f"rollout.samples_per_prompt={self.samples_per_prompt}: must be >= 1")
        _check(self.temperature > 0, f"rollout.temperature={self.temperature}: must be > 0 (sampling is always on)")
        _check(0 < self.top_p <= 1, f"rollout.top_p={self.top_p}: must be in (0, 1]")
        _check(self.max_new_tokens >= 1, f"rollout.max_new_tokens={self.max_new_tokens}: must be >= 1")
        _check(self.batch_samples >= 1, f"rollout.batch_samples={self.batch_samples}: must be >= 1")
        _check(self.batch_tokens >= 1, f"rollout.batch_tokens={self.batch_tokens}: must be >= 1")


@dataclass
class KLConfig:
    """The KL penalty to the reference policy (reset to the warm-up's policy at reincarnation)."""

    placement: KLPlacement = field(
        default=KLPlacement.none,
        metadata={"help": "none | loss (a term of the loss) | reward (subtracted from the per-token reward)"},
    )
    estimator: str = field(
        default="k3",
        metadata={
            "help": "a key of prerl.algo.losses.KL_ESTIMATORS: k1 (log-ratio) | k2 (½ log-ratio²) | "
            "k3 (ratio − 1 − log-ratio), Schulman's estimators"
        },
    )
    coef: float = field(default=0.001, metadata={"help": "weight of the KL term"})


@dataclass
class CriticConfig:
    """PPO's value model: a copy of the policy's trunk with a scalar head, trained by its own AdamW."""

    lr: float = field(default=1e-5, metadata={"help": "the critic's AdamW learning rate (verl critic.optim.lr)"})
    cliprange_value: float = field(
        default=0.5, metadata={"help": "value clip around the old value (verl critic.cliprange_value)"}
    )
    grad_clip: float = field(default=1.0, metadata={"help": "the critic's gradient-norm clip"})


@dataclass
class AlgorithmConfig:
    """The main-phase algorithm as a choice of parts; ``conf/algorithm/*.yaml`` cite each anchor."""

    name: str = field(default="grpo", metadata={"help": "the algorithm's name, for logs and tables"})
    advantage: str = field(
        default="grpo",
        metadata={
            "help": "advantage estimator, a key of prerl.algo.advantages.ADVANTAGE_ESTIMATORS "
            "(grpo, rloo, reinforce_pp, reinforce_pp_baseline, gae)"
        },
    )
    norm_adv_by_std: bool = field(
        default=True, metadata={"help": "divide GRPO's advantage by the group's std (Dr.GRPO turns it off)"}
    )
    gamma: float = field(default=1.0, metadata={"help": "discount of GAE / REINFORCE++ returns, in [0, 1]"})
    lam: float = field(default=1.0, metadata={"help": "GAE λ, in [0, 1]"})
    policy_loss: str = field(
        default="clipped",
        metadata={"help": "policy loss, a key of prerl.algo.losses.POLICY_LOSSES (clipped; plug-ins: gspo, cispo)"},
    )
    clip_ratio_low: float = field(
        default=0.2, metadata={"help": "ε_low: the ratio is clipped below at 1 − ε_low, in [0, 1] (1: no lower bound)"}
    )
    clip_ratio_high: float = field(default=0.2, metadata={"help": "ε_high: clipped above at 1 + ε_high, >= 0"})
    clip_ratio_c: float = field(default=10.0, metadata={"help": "dual-clip bound for negative advantages, > 1"})
    loss_agg_mode: str = field(
        default="token-mean",
        metadata={
            "help": "how token losses become one number, a key of prerl.algo.losses.AGGREGATIONS (verl's spelling): "
            "token-mean | seq-mean-token-mean | "
            "seq-mean-token-sum | seq-mean-token-sum-norm"
        },
    )
    loss_scale_factor: Optional[float] = field(
        default=None, metadata={"help": "C of seq-mean-token-sum-norm; null = rollout.max_new_tokens"}
    )
    kl: KLConfig = field(default_factory=KLConfig, metadata={"help": "the KL penalty"})
    entropy_coeff: float = field(default=0.0, metadata={"help": "weight of the entropy bonus (0 = off)"})
    critic: CriticConfig = field(
        default_factory=CriticConfig,
        metadata={"help": "the value model, used only by estimators that need values (gae)"},
    )
    # DAPO's dynamic sampling and overlong shaping.
    filter_groups: bool = field(
        default=False,
        metadata={
            "help": "DAPO's dynamic sampling: keep only groups whose rewards differ, re-sampling until the batch is full"
        },
    )
    max_sampling_rounds: int = field(
        default=10,
        metadata={"help": "rounds of generation per step before dynamic sampling gives up with an error, >= 1"},
    )
    overlong_buffer_tokens: int = field(
        default=0,
        metadata={
            "help": "DAPO's overlong shaping: a linear penalty down to -overlong_penalty_factor over the last "
            "this many tokens of rollout.max_new_tokens (0 = off)"
        },
    )
    overlong_penalty_factor: float = field(default=1.0, metadata={"help": "the overlong penalty at the limit"})
    mask_truncated: bool = field(
        default=False, metadata={"help": "drop truncated samples from the loss (TRL's mask_truncated_completions)"}
    )
    # verl: train_batch_size / ppo_mini_batch_size and ppo_epochs; TRL num_iterations. Above one update
    # per step the samples are off-policy after the first, so the ratio leaves 1 and the clip range acts.
    mini_batches_per_step: int = field(
        default=1,
        metadata={
            "help": "optimizer steps per rollout pass: the step's prompts, whole groups, shuffled by the seed and "
            "split into this many mini-batches (fewer prompts than this: one prompt each)"
        },
    )
    epochs_per_step: int = field(default=1, metadata={"help": "passes over the step's mini-batches"})
    params: dict[str, Any] = field(
        default_factory=dict,
        metadata={
            "help": (
                "knobs that plug-in parts declare beyond this schema (+algorithm.params.NAME=value); a key no "
                "chosen part declares is an error"
            )
        },
    )

    def __post_init__(self) -> None:
        # advantage, policy_loss, loss_agg_mode, kl.estimator and their knobs: prerl.launch.choices.check_choices
        _check(self.max_sampling_rounds >= 1, "algorithm.max_sampling_rounds must be >= 1")
        _check(
            self.overlong_buffer_tokens >= 0,
            f"algorithm.overlong_buffer_tokens={self.overlong_buffer_tokens}: must be >= 0",
        )
        _check(
            self.mini_batches_per_step >= 1,
            f"algorithm.mini_batches_per_step={self.mini_batches_per_step}: must be >= 1",
        )
        _check(self.epochs_per_step >= 1, f"algorithm.epochs_per_step={self.epochs_per_step}: must be >= 1")


@dataclass
class ObjectiveConfig:
    """The warm-up objective: PSR/NSR/all × pre/post space (the ``objective`` group)."""

    name: str = field(default="nsr_prerl", metadata={"help": "the objective's name, for logs and tables"})
    space: Space = field(
        default=Space.pre,
        metadata={
            "help": "pre: log π(y | c), one context token + response (PreRL) | post: log π(y | x), prompt + response"
        },
    )
    samples: str = field(
        default="negative",
        metadata={
            "help": "which samples get gradient, a key of prerl.algo.objectives.SAMPLE_SELECTIONS: negative (NSR) | "
            "positive (PSR) | all | weighted (W-REINFORCE)"
        },
    )
    advantage: str = field(
        default="group_mean",
        metadata={
            "help": "a key of prerl.algo.objectives.OBJECTIVE_ADVANTAGES: group_mean: r − mean_group(r) (official DSRL) | "
            "algorithm: the main algorithm's estimator | "
            "unit: +1 correct / −1 wrong"
        },
    )
    positive_weight: float = field(default=0.1, metadata={"help": "λ of W-REINFORCE (samples=weighted), >= 0"})
    # The official code's pretrain_loss_coef=0.01 (mostly cancels under Adam).
    loss_coef: float = field(default=0.01, metadata={"help": "scale of the whole warm-up loss, > 0"})
    loss_agg_mode: str = field(
        default="token-mean",
        metadata={
            "help": (
                "aggregation mode of the warm-up loss, a key of prerl.algo.losses.AGGREGATIONS (the official warm-up: "
                "token-mean)"
            )
        },
    )
    params: dict[str, Any] = field(
        default_factory=dict,
        metadata={
            "help": (
                "knobs that plug-in parts declare beyond this schema (+objective.params.NAME=value); a key no "
                "chosen part declares is an error"
            )
        },
    )

    def __post_init__(self) -> None:
        _check(self.loss_coef > 0, f"objective.loss_coef={self.loss_coef}: must be > 0")


@dataclass
class ReincarnationConfig:
    """Policy Reincarnation at the end of the warm-up."""

    reset_reference: bool = field(
        default=True, metadata={"help": "the KL anchor becomes the warm-up's policy (matters only when KL is on)"}
    )
    reset_optimizer: bool = field(
        default=False, metadata={"help": "start a fresh AdamW state (the official code keeps it)"}
    )


@dataclass
class OptimConfig:
    """AdamW on the policy."""

    # At 1e-4 NSR-PreRL collapses the mini model within ~15 steps; the paper uses 1e-6 on Qwen3-4B.
    lr: float = field(default=2e-5, metadata={"help": "learning rate, constant, > 0"})
    weight_decay: float = field(default=0.01, metadata={"help": "AdamW's decoupled weight decay"})
    betas: tuple[float, float] = field(default=(0.9, 0.999), metadata={"help": "AdamW's (β1, β2)"})
    grad_clip: float = field(default=1.0, metadata={"help": "gradient-norm clip"})
    max_nonfinite_updates: int = field(
        default=3,
        metadata={"help": "an update with a NaN/inf loss or gradient is skipped; this many in a row stop the run"},
    )
    # On a CPU the update's elementwise ops and its matmuls' inputs run at memory speed once a micro-batch's
    # activations leave the core's cache: on the mini model 1024 tokens cost 0.89-0.92x of 2048 for the
    # updates of GRPO, NSR-PreRL and PPO (policy and critic), and 2048 0.87-0.91x of 4096 (`make
    # bench-update`; docs/LOG.md). The paper preset uses 10240 on GPUs.
    micro_batch_tokens: int = field(
        default=1024,
        metadata={
            "help": "most tokens (padding included) one forward/backward micro-batch holds (with shared prompts: "
            "response tokens); changes memory, never the gradient"
        },
    )
    shared_prompt_forward: bool = field(
        default=True,
        metadata={
            "help": "post-train space: forward each prompt once per update (and per scoring pass), its samples "
            "on its KV cache: same loss and gradient to rounding, fewer tokens; off under gradient checkpointing"
        },
    )

    def __post_init__(self) -> None:
        _check(self.lr > 0, f"optim.lr={self.lr}: must be > 0")
        _check(self.micro_batch_tokens > 0, f"optim.micro_batch_tokens={self.micro_batch_tokens}: must be > 0")


@dataclass
class EvalSetConfig:
    """One eval set, keyed by name: a benchmark of ``prerl.data.eval_sets`` or a split of the data config."""

    benchmark: Optional[str] = field(default=None, metadata={"help": "default: the set's own name"})
    path: Optional[str] = field(
        default=None, metadata={"help": "a local JSONL / Parquet / zip file instead of the Hub"}
    )
    limit: Optional[int] = field(default=None, metadata={"help": "only the first N problems"})


@dataclass
class CheckpointConfig:
    """Crash-safe checkpoints under ``<output_dir>/checkpoints`` (see prerl/train/checkpoint.py)."""

    every_steps: int = field(
        default=10, metadata={"help": "updates between checkpoints, also at the end; 0 = only at the end"}
    )
    keep_last: int = field(default=2, metadata={"help": "checkpoints kept, >= 1"})

    def __post_init__(self) -> None:
        _check(self.every_steps >= 0, f"checkpoint.every_steps={self.every_steps}: must be >= 0")
        _check(self.keep_last >= 1, f"checkpoint.keep_last={self.keep_last}: must be >= 1")


@dataclass
class EvalConfig:
    """Avg@K and Pass@k on each eval set (in training, and by ``evaluate.py``)."""

    samples_per_prompt: int = field(
        default=8, metadata={"help": "K of Avg@K / Pass@k: responses sampled per eval prompt (the paper uses 32)"}
    )
    every_steps: int = field(
        default=10,
        metadata={"help": "updates between evaluations, also at step 0 and at the end; 0 = only at the ends"},
    )
    temperature: float = field(default=1.0, metadata={"help": "sampling temperature of eval responses, > 0"})
    top_p: float = field(default=1.0, metadata={"help": "nucleus sampling mass of eval responses, in (0, 1]"})
    max_new_tokens: int = field(
        default=96,
        metadata={
            "help": "longest eval response in tokens; data.max_prompt_tokens + it must fit the model's positions"
        },
    )
    # Empty here (YAML dicts merge, they do not replace): each conf/eval/*.yaml lists its own sets. Typed
    # ``Any`` so that ``+eval.sets.NAME.path=...`` can add a set on the command line (OmegaConf cannot add
    # keys to a dict of dataclasses); checked below.
    sets: dict[str, Any] = field(
        default_factory=dict,
        metadata={
            "help": "name -> {benchmark, path, limit}: a benchmark of prerl.data.eval_sets or a split of the data"
        },
    )
    data_dir: Optional[str] = field(
        default=None,
        metadata={
            "help": "a folder of offline benchmark copies, each at its Benchmark.local_file path "
            "(math500/test.jsonl, ...): files there replace the Hub (must exist)"
        },
    )
    score_workers: int = field(
        default=2, metadata={"help": "processes for math-verify, parallel sandboxed programs for code"}
    )
    code_timeout_s: float = field(default=10.0, metadata={"help": "per HumanEval program, wall-clock seconds"})
    code_memory_mb: int = field(default=1024, metadata={"help": "per HumanEval program, address space in MB"})

    def __post_init__(self) -> None:
        _check(self.samples_per_prompt >= 1, f"eval.samples_per_prompt={self.samples_per_prompt}: must be >= 1")
        _check(self.every_steps >= 0, f"eval.every_steps={self.every_steps}: must be >= 0")
        _check(
            self.code_timeout_s > 0 and self.code_memory_mb > 0, "eval.code_timeout_s and code_memory_mb must be > 0"
        )
        _check(self.temperature > 0, f"eval.temperature={self.temperature}: must be > 0 (sampling is always on)")
        _check(0 < self.top_p <= 1, f"eval.top_p={self.top_p}: must be in (0, 1]")
        _check(self.max_new_tokens >= 1, f"eval.max_new_tokens={self.max_new_tokens}: must be >= 1")
        _check(self.score_workers >= 1, f"eval.score_workers={self.score_workers}: must be >= 1")
        _check_exists("eval.data_dir", self.data_dir, "folder")
        allowed = set(EvalSetConfig.__dataclass_fields__)
        for name, value in list(self.sets.items()):
            if not isinstance(value, EvalSetConfig):
                value = dict(value or {})
                _check(
                    set(value) <= allowed,
                    f"eval.sets.{name}: unknown keys {sorted(set(value) - allowed)}; allowed: {sorted(allowed)}",
                )
                self.sets[name] = EvalSetConfig(**value)


@dataclass
class TrackingConfig:
    """MLflow. ``uri`` null means $MLFLOW_TRACKING_URI, else sqlite:///<cwd>/mlflow.db."""

    uri: Optional[str] = field(
        default=None,
        metadata={"help": "MLflow tracking URI; null = $MLFLOW_TRACKING_URI, else sqlite:///<cwd>/mlflow.db"},
    )
    experiment: str = field(default="prerl-mini", metadata={"help": "MLflow experiment the run is logged in"})
    run_name: Optional[str] = field(default=None, metadata={"help": "MLflow run name; null = MLflow's"})
    tags: dict[str, str] = field(default_factory=dict, metadata={"help": "extra MLflow tags of the run"})
    log_samples: int = field(
        default=16, metadata={"help": "sample completions logged as a table artifact per evaluation (0 = none)"}
    )
    skip_complete: bool = field(
        default=True,
        metadata={
            "help": "in a multirun (-m), a job whose config already has a FINISHED run in the experiment (same "
            "config_hash tag) returns that run's result instead of training again"
        },
    )
    system_metrics: bool = field(
        default=False,
        metadata={
            "help": "MLflow's own system metrics (CPU, memory, disk, network; GPU with pynvml) as system/*; needs psutil"
        },
    )
    system_metrics_interval_s: float = field(default=10.0, metadata={"help": "seconds between system-metric samples"})
    # When the tracking server goes away mid-run, training continues and what could not be logged is
    # kept (in memory and in <output_dir>/mlflow_pending.jsonl) and sent when the server answers again.
    outage_wait_s: float = field(
        default=300.0,
        metadata={
            "help": "seconds the end of a run waits for an unreachable tracking server before failing, "
            "naming the steps not recorded"
        },
    )


@dataclass
class DistributedConfig:
    """How ``torchrun`` processes hold the models (docs/scaling-out.md); nothing changes in one process."""

    # fsdp2: one unit per decoder layer; the weights are gathered whole for rollouts and scoring, so
    # they alone must fit one device.
    strategy: str = field(
        default="replicate",
        metadata={
            "help": "replicate: every rank holds full copies and all-reduces gradients | fsdp2: parameters, "
            "gradients and optimizer state sharded over the ranks"
        },
    )

    def __post_init__(self) -> None:
        _check(  # a closed set (prerl.parallel.distributed.STRATEGIES), checked here without importing torch
            self.strategy in STRATEGY_NAMES,
            f"distributed.strategy={self.strategy!r}: choose one of {list(STRATEGY_NAMES)}",
        )


_UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12}
_UNITS |= {"KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}
_SIZE = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][0-9]+)?)\s*([A-Za-z]*)\s*$")


def parse_bytes(text: str, key: str = "plan.device_memory") -> int:
    """``80GiB``, ``141GB``, ``8e10`` → bytes (GB = 10⁹, GiB = 2³⁰); a one-line ``ConfigError`` otherwise."""
    match = _SIZE.match(str(text))
    unit = match.group(2).upper() if match else None
    if match is None or unit not in _UNITS:
        raise ConfigError(f"{key}={text!r}: write a size such as 80GiB, 141GB or 8.5e10 (units B, KB-TB, KiB-TiB)")
    return int(float(match.group(1)) * _UNITS[unit])


@dataclass
class PlanConfig:
    """The memory plan checked before any weight loads (prerl/plan; ``python train.py ... --plan`` prints it)."""

    check: bool = field(
        default=True,
        metadata={
            "help": "refuse to start (one line, exit status 2) when a phase's planned peak exceeds the device "
            "memory by more than plan.margin; false = start anyway"
        },
    )
    margin: float = field(
        default=0.05,
        metadata={
            "help": "fraction of the device memory a planned peak may exceed it by before the run is refused "
            "(the plan's own error: docs/scaling-out.md#memory-plan); >= 0"
        },
    )
    device_memory: Optional[str] = field(
        default=None,
        metadata={
            "help": "memory of one device, e.g. 80GiB or 141GB; null = the local GPU's, or on a CPU run the "
            "machine's memory shared by its local ranks"
        },
    )

    def __post_init__(self) -> None:
        _check(self.margin >= 0, f"plan.margin={self.margin}: must be >= 0")
        if self.device_memory is not None:
            _check(parse_bytes(self.device_memory) > 0, f"plan.device_memory={self.device_memory!r}: must be > 0")


def _group(factory: Any, help: str) -> Any:
    return field(default_factory=factory, metadata={"help": help})


@dataclass
class TrainConfig:
    """One run: a warm-up of ``warmup_steps`` updates with ``objective``, then ``algorithm``."""

    model: ModelConfig = _group(ModelConfig, "the policy (group model)")
    data: DataConfig = _group(DataConfig, "training prompts and the in-training eval splits (group data)")
    rollout: RolloutConfig = _group(RolloutConfig, "sampling of responses (group rollout)")
    algorithm: AlgorithmConfig = _group(AlgorithmConfig, "the main-phase algorithm (group algorithm)")
    objective: ObjectiveConfig = _group(ObjectiveConfig, "the warm-up objective (group objective)")
    reincarnation: ReincarnationConfig = _group(ReincarnationConfig, "Policy Reincarnation after the warm-up")
    optim: OptimConfig = _group(OptimConfig, "the policy's optimizer")
    eval: EvalConfig = _group(EvalConfig, "Avg@K / Pass@k evaluation (group eval)")
    tracking: TrackingConfig = _group(TrackingConfig, "MLflow")
    checkpoint: CheckpointConfig = _group(CheckpointConfig, "crash-safe checkpoints")
    distributed: DistributedConfig = _group(DistributedConfig, "multi-process training (torchrun)")
    plan: PlanConfig = _group(PlanConfig, "the memory plan checked before the weights load")
    resume: str = field(
        default="auto",
        metadata={
            "help": "auto: continue from the newest checkpoint in output_dir (and its MLflow run) | never: start afresh"
        },
    )
    warmup_steps: int = field(
        default=20, metadata={"help": "optimizer updates with the objective before reincarnation, in [0, total_steps]"}
    )
    total_steps: int = field(default=60, metadata={"help": "optimizer updates in all (warm-up included), >= 0"})
    prompts_per_step: int = field(
        default=16,
        metadata={"help": "prompts per update, >= 1; samples per update = prompts × rollout.samples_per_prompt"},
    )
    seed: int = field(default=0, metadata={"help": "seed of sampling, shuffling and the prompt stream"})
    device: str = field(default="auto", metadata={"help": "auto | cpu | cuda"})
    # GPU kernels repeat on the same machine (CPU kernels already do; vLLM's are its own); it never
    # makes two machines agree (docs/reproducibility.md).
    deterministic: bool = field(default=False, metadata={"help": "torch.use_deterministic_algorithms(True)"})
    cache_dir: str = field(default=".cache/prerl", metadata={"help": "built mini models and other caches"})
    output_dir: str = field(
        default="outputs/run",
        metadata={"help": "checkpoints and artifacts of the run (conf/config.yaml: Hydra's run folder)"},
    )
    plugins: list[str] = field(
        default_factory=list,
        metadata={
            "help": (
                "modules (import paths) that register parts beside the plug-in package prerl/algo/plugins/, e.g. "
                "plugins=[mylab.parts]; imported by the validation step before any name is checked"
            )
        },
    )

    def __post_init__(self) -> None:
        _check(self.total_steps >= 0, f"total_steps={self.total_steps}: must be >= 0")
        _check(
            0 <= self.warmup_steps <= self.total_steps,
            f"warmup_steps={self.warmup_steps} must be between 0 and total_steps={self.total_steps}",
        )
        _check(self.prompts_per_step >= 1, f"prompts_per_step={self.prompts_per_step}: must be >= 1")
        _check(self.device in ("auto", "cpu", "cuda"), f"device={self.device!r}: choose auto, cpu or cuda")
        _check(self.resume in ("auto", "never"), f"resume={self.resume!r}: choose auto or never")
        _check(
            self.algorithm.overlong_buffer_tokens < self.rollout.max_new_tokens,
            "algorithm.overlong_buffer_tokens must be below rollout.max_new_tokens",
        )
        self._check_lengths()

    def sequence_tokens(self) -> int:
        """The longest prompt + response the run asks an engine for (training rollouts and evaluation)."""
        return self.data.max_prompt_tokens + max(self.rollout.max_new_tokens, self.eval.max_new_tokens)

    def _check_lengths(self) -> None:
        """Prompt + response must fit the model's positions (and vLLM's max_model_len when set)."""
        prompt = self.data.max_prompt_tokens
        limits = [(self.model.max_positions(), "the model's positions")]
        if self.rollout.vllm.max_model_len is not None:
            limits.append((self.rollout.vllm.max_model_len, "rollout.vllm.max_model_len"))
        for key, new in (
            ("rollout.max_new_tokens", self.rollout.max_new_tokens),
            ("eval.max_new_tokens", self.eval.max_new_tokens),
        ):
            for limit, what in limits:
                _check(
                    limit is None or prompt + new <= limit,
                    f"{key}={new}: must be <= {(limit or 0) - prompt} ({what}, {limit}, minus "
                    f"data.max_prompt_tokens={prompt})",
                )


def register_configs() -> None:
    from hydra.core.config_store import ConfigStore  # here: building a config needs no Hydra

    ConfigStore.instance().store(name="train_schema", node=TrainConfig)
