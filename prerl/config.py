"""Typed configuration: the schema behind ``conf/``, validated before any model is loaded.

Every Hydra group (``algorithm``, ``objective``, ``model``, ``data``, ``rollout``, ``eval``,
``tracking``) fills one of the dataclasses below; unknown keys and wrong types are rejected by
OmegaConf against this schema, and ``__post_init__`` checks the values. Names of registered parts
are plain strings here, checked with the chosen parts' own knobs by ``prerl.choices.check_choices``:
this module imports nothing but the standard library and ``prerl.enums``, so a config is cheap to
build and no plug-in has to exist before it. Units live in the names:
``*_prompts`` counts prompts, ``*_samples`` counts sampled responses, ``*_tokens`` counts tokens.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

# The schema's closed choices live in a leaf module (re-exported here); open choices (losses,
# estimators, aggregation, sample selection, KL estimators, strategies) are plain names, checked
# against their registries by prerl.choices.check_choices once the plug-ins have loaded.
from prerl.enums import KLPlacement, Space  # noqa: F401 - re-exported


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


@dataclass
class MiniModelConfig:
    """Recipe of the locally pre-trained mini base model (ignored for Hub models)."""

    name: str = "mini"
    # What the corpus teaches: "addition" (prerl/mini/task.py, one method with flaws at the rates below)
    # or "styles" (prerl/mini/styles.py, three prompt-independent solution styles at fixed rates)
    task: str = "addition"
    seed: int = 0
    vocab_size: int = 400
    hidden_size: int = 128
    intermediate_size: int = 384
    num_layers: int = 4
    num_heads: int = 4
    num_kv_heads: int = 2
    max_positions: int = 512
    corpus_documents: int = 30000
    corpus_min_operands: int = 2
    corpus_max_operands: int = 3
    corpus_min_digits: int = 1
    corpus_max_digits: int = 3
    prompt_free_fraction: float = 0.2
    slip_rate: float = 0.12
    drop_carry_rate: float = 0.2
    repair_rate: float = 0.35
    recheck_rate: float = 0.05
    train_steps: int = 560
    batch_size: int = 64
    lr: float = 3e-3

    def __post_init__(self) -> None:
        _check(self.task in ("addition", "styles"), f"model.mini.task={self.task!r}: choose addition or styles")

    @staticmethod
    def micro() -> "MiniModelConfig":
        """A tiny variant for tests (conf/model/micro.yaml): one-digit sums, builds in under a minute,
        and answers about one in eight correctly, so groups have mixed rewards."""
        return MiniModelConfig(
            name="micro", hidden_size=64, intermediate_size=128, num_layers=2, num_heads=2, num_kv_heads=1,
            vocab_size=300, corpus_documents=3000, corpus_min_operands=2, corpus_max_operands=2,
            corpus_min_digits=1, corpus_max_digits=1, train_steps=200, batch_size=32,
        )


@dataclass
class ModelConfig:
    """The policy. ``path`` is a Hub id or a local folder; ``mini`` builds one when ``path`` is null."""

    path: Optional[str] = None
    mini: Optional[MiniModelConfig] = field(default_factory=MiniModelConfig)
    dtype: str = "float32"  # float32 | bfloat16 | float16: the trained weights and the optimizer state
    # Compute dtype of forward/backward (torch.autocast), with weights kept in ``dtype``. bf16 weights
    # under AdamW lose updates below their resolution (lr 1e-6 on weights ~1e-2: all of them), so the
    # GPU configs keep float32 weights and compute in bfloat16, as verl's FSDP mixed precision does.
    autocast: Optional[str] = None  # null | bfloat16 | float16
    # PreRL's single context token c in log π(y | c); Qwen3 has no BOS and the paper uses <|im_start|>.
    context_token: str = "<|im_start|>"
    chat_template_kwargs: dict[str, Any] = field(default_factory=dict)
    gradient_checkpointing: bool = False

    def __post_init__(self) -> None:
        _check(self.path is not None or self.mini is not None, "model: set model.path or model.mini")
        _check(self.dtype in ("float32", "bfloat16", "float16"),
               f"model.dtype={self.dtype!r}: choose one of float32, bfloat16, float16")
        _check(self.autocast in (None, "bfloat16", "float16"),
               f"model.autocast={self.autocast!r}: choose null, bfloat16 or float16")


@dataclass
class DataConfig:
    """Training prompts and the in-training eval sets. ``mini`` generates the synthetic task."""

    name: str = "mini"  # mini | math (MATH train, prerl.benchmarks)
    path: Optional[str] = None  # data=math: a local JSONL / Parquet file instead of the Hub
    train_problems: int = 4000
    test_problems: int = 64
    ood_problems: int = 64
    seed: int = 1234
    # In-distribution difficulty (train and test) and the harder out-of-distribution test. The
    # default mini base model samples ~40% correct in-distribution and ~7% out of it.
    min_operands: int = 2
    max_operands: int = 2
    min_digits: int = 2
    max_digits: int = 3
    ood_min_operands: int = 3
    ood_max_operands: int = 3
    ood_min_digits: int = 2
    ood_max_digits: int = 2

    def __post_init__(self) -> None:
        _check(self.train_problems > 0, "data.train_problems must be positive")
        _check(self.min_operands <= self.max_operands and self.min_digits <= self.max_digits,
               "data: min_* must not exceed max_*")


@dataclass
class VLLMConfig:
    """Settings of the vLLM engine (``rollout=vllm``), colocated with training on the same GPUs."""

    tensor_parallel_size: int = 1  # GPUs per engine: torchrun ranks are grouped this many at a time
    gpu_memory_utilization: float = 0.3  # share of each GPU for vLLM's weights and KV cache
    max_model_len: Optional[int] = None  # longest prompt + response in tokens; null = the model's limit
    sleep: bool = True  # release weights and KV cache during the update where vLLM supports it (not CPU)
    enforce_eager: bool = False  # no CUDA graphs: faster start-up, slower decoding
    dtype: Optional[str] = None  # the engine's weights; null = the policy's (model.dtype)
    seed: int = 0  # conf/rollout/vllm.yaml sets it to the run's seed

    def __post_init__(self) -> None:
        _check(self.tensor_parallel_size >= 1, "rollout.vllm.tensor_parallel_size must be >= 1")
        _check(0 < self.gpu_memory_utilization <= 1, "rollout.vllm.gpu_memory_utilization must be in (0, 1]")


@dataclass
class RolloutConfig:
    """Sampling of responses. ``engine`` is the name of a registered rollout engine."""

    engine: str = "hf"
    samples_per_prompt: int = 8
    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int = 96
    batch_samples: int = 256  # sequences generated together (transformers engine)
    vllm: VLLMConfig = field(default_factory=VLLMConfig)

    def __post_init__(self) -> None:
        _check(self.samples_per_prompt >= 1, "rollout.samples_per_prompt must be >= 1")
        _check(self.temperature > 0, "rollout.temperature must be > 0 (sampling is always on)")
        _check(0 < self.top_p <= 1, "rollout.top_p must be in (0, 1]")
        _check(self.max_new_tokens >= 1, "rollout.max_new_tokens must be >= 1")


@dataclass
class KLConfig:
    placement: KLPlacement = KLPlacement.none
    estimator: str = "k3"  # key in prerl.losses.KL_ESTIMATORS
    coef: float = 0.001


@dataclass
class CriticConfig:
    """PPO's value model: a copy of the policy's trunk with a scalar head, trained by its own AdamW."""

    lr: float = 1e-5  # verl critic.optim.lr
    cliprange_value: float = 0.5  # verl critic.cliprange_value
    grad_clip: float = 1.0


@dataclass
class AlgorithmConfig:
    """The main-phase algorithm as a choice of parts; ``conf/algorithm/*.yaml`` cite each anchor."""

    name: str = "grpo"
    advantage: str = "grpo"  # key in prerl.advantages.ADVANTAGE_ESTIMATORS
    norm_adv_by_std: bool = True  # GRPO's σ (Dr.GRPO turns it off)
    gamma: float = 1.0  # discount of GAE / REINFORCE++ returns
    lam: float = 1.0  # GAE λ
    policy_loss: str = "clipped"  # key in prerl.losses.POLICY_LOSSES
    clip_ratio_low: float = 0.2
    clip_ratio_high: float = 0.2
    clip_ratio_c: float = 10.0  # dual-clip bound for negative advantages
    loss_agg_mode: str = "token-mean"  # key in prerl.losses.AGGREGATIONS, verl's spelling, e.g. seq-mean-token-sum-norm
    loss_scale_factor: Optional[float] = None  # C of seq-mean-token-sum-norm; null = rollout.max_new_tokens
    kl: KLConfig = field(default_factory=KLConfig)
    entropy_coeff: float = 0.0
    critic: CriticConfig = field(default_factory=CriticConfig)  # used only by estimators that need values
    # DAPO's dynamic sampling: keep only groups whose accuracies differ, re-sampling until the batch is full.
    filter_groups: bool = False
    max_sampling_rounds: int = 10  # rounds of generation per step before giving up with an error
    # DAPO's overlong shaping: linear penalty up to -factor over the last ``overlong_buffer_tokens``.
    overlong_buffer_tokens: int = 0  # 0 = off
    overlong_penalty_factor: float = 1.0
    mask_truncated: bool = False  # drop truncated samples from the loss (TRL's mask_truncated_completions)
    # Optimizer steps per rollout: the step's prompts, whole groups, shuffled by the seed and split into
    # this many mini-batches (verl: train_batch_size / ppo_mini_batch_size), each pass over them an
    # epoch (verl ppo_epochs, TRL num_iterations). Above one update per step the samples are off-policy
    # after the first, so the ratio leaves 1 and the clip range acts. A step with fewer prompts than
    # mini-batches (the smoke preset's 4) takes one prompt per mini-batch.
    mini_batches_per_step: int = 1
    epochs_per_step: int = 1
    params: dict[str, Any] = field(default_factory=dict, metadata={"help": (
        "Knobs that plug-in parts declare beyond this schema (+algorithm.params.NAME=value); a key no "
        "chosen part declares is an error.")})

    def __post_init__(self) -> None:
        # advantage, policy_loss, loss_agg_mode, kl.estimator and their knobs: prerl.choices.check_choices
        _check(self.max_sampling_rounds >= 1, "algorithm.max_sampling_rounds must be >= 1")
        _check(self.overlong_buffer_tokens >= 0, "algorithm.overlong_buffer_tokens must be >= 0")
        _check(self.mini_batches_per_step >= 1, "algorithm.mini_batches_per_step must be >= 1")
        _check(self.epochs_per_step >= 1, "algorithm.epochs_per_step must be >= 1")


@dataclass
class ObjectiveConfig:
    """The warm-up objective: PSR/NSR/all × pre/post space (the ``objective`` group)."""

    name: str = "nsr_prerl"
    space: Space = Space.pre
    samples: str = "negative"  # key in prerl.objectives.SAMPLE_SELECTIONS: all | positive (PSR) | negative (NSR) | weighted
    advantage: str = "group_mean"  # key in prerl.objectives.OBJECTIVE_ADVANTAGES: group_mean | algorithm | unit
    positive_weight: float = 0.1  # λ of W-REINFORCE (samples=weighted)
    # The official code scales the whole warm-up loss by pretrain_loss_coef=0.01 (mostly cancels under Adam).
    loss_coef: float = 0.01
    loss_agg_mode: str = field(default="token-mean", metadata={"help": (
        "Aggregation mode of the warm-up loss, a key in prerl.losses.AGGREGATIONS (the official warm-up: "
        "token-mean).")})
    params: dict[str, Any] = field(default_factory=dict, metadata={"help": (
        "Knobs that plug-in parts declare beyond this schema (+objective.params.NAME=value); a key no "
        "chosen part declares is an error.")})

    def __post_init__(self) -> None:
        _check(self.loss_coef > 0, "objective.loss_coef must be > 0")


@dataclass
class ReincarnationConfig:
    """Policy Reincarnation at the end of the warm-up."""

    reset_reference: bool = True  # KL anchor <- current policy (matters only when KL is on)
    reset_optimizer: bool = False  # the official code keeps the AdamW state


@dataclass
class OptimConfig:
    lr: float = 2e-5  # mini default; at 1e-4 NSR-PreRL collapses the mini model within ~15 steps (paper: 1e-6 on Qwen3-4B)
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.999)
    grad_clip: float = 1.0
    # An update whose loss or gradient is NaN/inf is skipped; this many in a row stop the run.
    max_nonfinite_updates: int = 3
    # Upper bound on the tokens one forward/backward micro-batch holds (padding included). On the
    # mini model's CPU update 4096 costs ~20% less than 16384 (less padding, activations stay in
    # cache; benchmarks/bench.py); on GPUs raise it (the paper preset uses 10240).
    micro_batch_tokens: int = 4096

    def __post_init__(self) -> None:
        _check(self.lr > 0, "optim.lr must be > 0")
        _check(self.micro_batch_tokens > 0, "optim.micro_batch_tokens must be > 0")


@dataclass
class EvalSetConfig:
    """One eval set, keyed by name: a benchmark of ``prerl.benchmarks`` or a split of the data config."""

    benchmark: Optional[str] = None  # default: the set's own name
    path: Optional[str] = None  # a local JSONL / Parquet / zip file instead of the Hub
    limit: Optional[int] = None  # only the first N problems


@dataclass
class CheckpointConfig:
    """Crash-safe checkpoints under ``<output_dir>/checkpoints`` (see prerl/checkpoint.py)."""

    every_steps: int = 10  # also at the end; 0 = only at the end
    keep_last: int = 2

    def __post_init__(self) -> None:
        _check(self.every_steps >= 0, "checkpoint.every_steps must be >= 0")
        _check(self.keep_last >= 1, "checkpoint.keep_last must be >= 1")


@dataclass
class EvalConfig:
    """Avg@K and Pass@k on each eval set (in training, and by ``evaluate.py``)."""

    samples_per_problem: int = 8  # K (the paper uses 32)
    every_steps: int = 10  # also at step 0 and at the end; 0 = only at the ends
    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int = 96
    # name -> EvalSetConfig fields. Empty here (YAML dicts merge, they do not replace): each
    # conf/eval/*.yaml lists its own sets. Typed ``Any`` so that ``+eval.sets.NAME.path=...`` can add a
    # set on the command line (OmegaConf cannot add keys to a dict of dataclasses); checked below.
    sets: dict[str, Any] = field(default_factory=dict)
    data_dir: Optional[str] = None  # a folder laid out like ../shared/data: benchmark files there replace the Hub
    score_workers: int = 2  # processes for math-verify, parallel sandboxed programs for code
    code_timeout_s: float = 10.0  # per HumanEval program (wall clock)
    code_memory_mb: int = 1024  # per HumanEval program (address space)

    def __post_init__(self) -> None:
        _check(self.samples_per_problem >= 1, "eval.samples_per_problem must be >= 1")
        _check(self.every_steps >= 0, "eval.every_steps must be >= 0")
        _check(self.code_timeout_s > 0 and self.code_memory_mb > 0, "eval.code_timeout_s and code_memory_mb must be > 0")
        allowed = set(EvalSetConfig.__dataclass_fields__)
        for name, value in list(self.sets.items()):
            if not isinstance(value, EvalSetConfig):
                value = dict(value or {})
                _check(set(value) <= allowed, f"eval.sets.{name}: unknown keys {sorted(set(value) - allowed)}; "
                                              f"allowed: {sorted(allowed)}")
                self.sets[name] = EvalSetConfig(**value)


@dataclass
class TrackingConfig:
    """MLflow. ``uri`` null means $MLFLOW_TRACKING_URI, else sqlite:///<cwd>/mlflow.db."""

    uri: Optional[str] = None
    experiment: str = "prerl-mini"
    run_name: Optional[str] = None
    tags: dict[str, str] = field(default_factory=dict)
    log_samples: int = 16  # sample completions logged as a table artifact per eval
    # In a multirun (-m), a job whose config already has a FINISHED run in the experiment (same
    # ``config_hash`` tag, prerl/completed.py) returns that run's result instead of training again.
    skip_complete: bool = True
    # MLflow's own system metrics (CPU, memory, disk, network; GPU when pynvml is installed) as
    # ``system/*`` every ``system_metrics_interval_s`` seconds; needs psutil.
    system_metrics: bool = False
    system_metrics_interval_s: float = 10.0
    # When the tracking server goes away mid-run, training continues and what could not be logged is
    # kept (in memory and in <output_dir>/mlflow_pending.jsonl) and sent when the server answers again.
    # At the end the run waits this long for it, then fails naming the steps not recorded.
    outage_wait_s: float = 300.0


@dataclass
class DistributedConfig:
    """How ``torchrun`` processes hold the models (README, "Scaling out"); nothing changes in one process."""

    # replicate: every rank holds full copies of the policy, reference, critic and optimizer state, and
    # gradients are all-reduced. fsdp2: parameters, gradients and optimizer state are sharded over the
    # ranks (FSDP2, one unit per decoder layer), for models whose training state does not fit one device;
    # the weights are gathered whole for rollouts and scoring, so they alone must fit.
    strategy: str = "replicate"  # key in prerl.distributed.STRATEGIES


@dataclass
class TrainConfig:
    """One run: a warm-up of ``warmup_steps`` updates with ``objective``, then ``algorithm``."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    algorithm: AlgorithmConfig = field(default_factory=AlgorithmConfig)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    reincarnation: ReincarnationConfig = field(default_factory=ReincarnationConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    distributed: DistributedConfig = field(default_factory=DistributedConfig)
    # auto: continue from the newest checkpoint in output_dir (and its MLflow run); never: start afresh
    resume: str = "auto"
    warmup_steps: int = 20  # optimizer updates with the objective before reincarnation
    total_steps: int = 60  # optimizer updates in all (warm-up included)
    prompts_per_step: int = 16  # prompts per update; samples per update = prompts × samples_per_prompt
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda
    # torch.use_deterministic_algorithms(True): torch's GPU kernels repeat on the same machine (its CPU
    # kernels already do; vLLM's are its own); it never makes two machines agree (README, "Reproducibility")
    deterministic: bool = False
    cache_dir: str = ".cache/prerl"
    output_dir: str = "outputs/run"
    plugins: list[str] = field(default_factory=list, metadata={"help": (
        "Modules (import paths) that register parts beside the plug-in package prerl/algorithms/, e.g. "
        "plugins=[mylab.parts]; imported by the validation step before any name is checked.")})

    def __post_init__(self) -> None:
        _check(self.total_steps >= 0, "total_steps must be >= 0")
        _check(0 <= self.warmup_steps <= self.total_steps,
               f"warmup_steps={self.warmup_steps} must be between 0 and total_steps={self.total_steps}")
        _check(self.prompts_per_step >= 1, "prompts_per_step must be >= 1")
        _check(self.device in ("auto", "cpu", "cuda"), f"device={self.device!r}: choose auto, cpu or cuda")
        _check(self.resume in ("auto", "never"), f"resume={self.resume!r}: choose auto or never")
        _check(self.algorithm.overlong_buffer_tokens < self.rollout.max_new_tokens,
               "algorithm.overlong_buffer_tokens must be below rollout.max_new_tokens")


def register_configs() -> None:
    from hydra.core.config_store import ConfigStore  # here: building a config needs no Hydra

    ConfigStore.instance().store(name="train_schema", node=TrainConfig)
