"""The memory of each phase of a step on one device, from the config and the model's shape.

The plan models the code once the GPU fixes of issue #35 are in: gradients are freed after each
optimizer step, vLLM runs in the compute dtype with ``max_model_len`` = what the run needs (prompt
reservation + the longest ``max_new_tokens``), under FSDP2 the weights are pushed into vLLM one tensor
at a time and are not gathered whole while vLLM samples, and the transformers engine's generate calls
are bounded. It also assumes that torch's allocator cache is emptied before vLLM wakes
(``torch.cuda.empty_cache()``, as verl does): memory torch keeps cached from the update is not free to
vLLM otherwise.

What stays on a device for the whole run (``resident``): the policy's weights and AdamW's two moments
(in ``model.dtype``; under FSDP2 rank 0's padded shard of every tensor), the KL reference's weights and
PPO's critic (weights and moments) where the config builds them. Each phase adds what it allocates:

- rollout with vLLM: vLLM's share, ``gpu_memory_utilization`` of the whole device (vLLM sizes its
  weights, activations and KV cache to fit in it, and refuses to start when less is free), and under
  FSDP2 one whole tensor being pushed;
- rollout and evaluation with the transformers engine: under autocast the bf16 copy of every linear
  weight (torch caches it for the autocast block), under FSDP2 the whole weights (``fsdp.full_weights``),
  the KV cache of the generate call that holds the most (at most ``rollout.batch_tokens`` positions, as
  the engine bounds it, and the prefill's cache that is copied per sample) and its sampling buffers;
- scoring (old log-probs, the reference, critic values): the same copies and gathered weights, and a
  forward without gradient (prerl/plan/activations.py);
- update: the gradients, the autocast copies, one micro-batch's activations (prerl/plan/activations.py),
  under FSDP2 the root unit and two decoder layers gathered (one computing, one prefetched) and a
  unit's gradients before their reduce-scatter;
- optimizer step: gradients, and AdamW's temporary (CUDA: torch's multi-tensor AdamW takes the square
  root of every second moment at once; CPU: one tensor at a time), or with replicated ranks the flat
  buffer ``distributed.all_reduce_grads`` sums the gradients in;
- critic update (PPO): the critic's gradients, autocast copies and activations (no LM head).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Callable, Optional

from prerl.algo.advantages import needs_critic
from prerl.algo.objectives import Phase as StepPhase
from prerl.algo.objectives import main_phase, warmup_phase
from prerl.config.enums import Space
from prerl.config.schema import ConfigError, KLPlacement, TrainConfig
from prerl.plan.activations import MicroBatch, Precision, layer_bytes, no_grad_peak, update_peak
from prerl.plan.shapes import ModelShape
from prerl.rollout.hf import prompts_per_call

DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}
# what a phase's bytes are spent on: the columns of the plan's table
CATEGORIES = (
    "weights",
    "optimizer",
    "reference",
    "critic",
    "gradients",
    "autocast",
    "activations",
    "gathered",
    "KV cache",
    "vLLM",
)


@dataclass(frozen=True)
class Target:
    """Where the run goes: ``kind`` cuda or cpu, the memory of one device (None: unknown), the ranks."""

    kind: str
    device_bytes: Optional[int]
    ranks: int = 1


@dataclass(frozen=True)
class Item:
    category: str  # one of CATEGORIES
    bytes: int
    what: str = ""


@dataclass(frozen=True)
class PhaseMemory:
    name: str
    items: tuple[Item, ...]
    notes: tuple[str, ...] = ()
    refused: Optional[str] = None  # why the code would refuse to run this phase (the plan then refuses too)
    remedies: tuple[str, ...] = ()  # settings that would shrink the phase, sharding aside (prerl/plan remedy)

    @property
    def total(self) -> int:
        return sum(i.bytes for i in self.items)

    def by_category(self) -> dict[str, int]:
        out = dict.fromkeys(CATEGORIES, 0)
        for item in self.items:
            out[item.category] += item.bytes
        return out


def planned_compute_dtype(cfg: TrainConfig, target: Target) -> Optional[str]:
    """``model.autocast`` where the run goes: ``auto`` is bfloat16 on a GPU (a planned GPU is taken to
    have bf16 matrix units, as every GPU that trains these models does) and, on a CPU, what this
    machine's CPU has (``prerl.models.loading.compute_dtype``)."""
    if cfg.model.autocast != "auto":
        return cfg.model.autocast
    if target.kind == "cuda":
        return "bfloat16"
    import torch

    from prerl.models.loading import compute_dtype

    return compute_dtype(cfg.model, torch.device("cpu"))


@dataclass(frozen=True)
class Setup:
    """A config resolved into what the formulas read."""

    cfg: TrainConfig
    shape: ModelShape
    target: Target
    precision: Precision = field(init=False)

    def __post_init__(self) -> None:
        w = DTYPE_BYTES[self.cfg.model.dtype]
        autocast = planned_compute_dtype(self.cfg, self.target)
        c = DTYPE_BYTES[autocast] if autocast else w
        object.__setattr__(
            self, "precision", Precision(w, c, autocast is not None and autocast != self.cfg.model.dtype)
        )

    @property
    def shard_ranks(self) -> int:
        """1 for replicated ranks; the world size under FSDP2."""
        return self.target.ranks if self.cfg.distributed.strategy == "fsdp2" else 1

    @property
    def sharded(self) -> bool:
        return self.shard_ranks > 1

    def held(self) -> int:
        """Parameters of the policy one rank holds (its padded shard under FSDP2)."""
        return self.shape.shard(self.shard_ranks)

    def critic_held(self) -> int:
        """The critic: the policy's trunk and a scalar head (prerl/train/critic.py), sharded alike."""
        s, n = self.shape, self.shard_ranks
        head_shard = -(-s.vocab // n) * s.hidden if s.head_params else 0
        return s.shard(n) - head_shard + s.hidden + 1

    def training_phases(self) -> list[StepPhase]:
        """The warm-up and main phases the run trains with."""
        out = [warmup_phase(self.cfg.objective)] if self.cfg.warmup_steps > 0 else []
        return out + ([main_phase(self.cfg.algorithm)] if self.cfg.total_steps > self.cfg.warmup_steps else [])

    @property
    def uses_reference(self) -> bool:
        return self.cfg.algorithm.kl.placement != KLPlacement.none

    @property
    def uses_critic(self) -> bool:
        return needs_critic(self.cfg.algorithm.advantage)

    def longest_sequence(self) -> int:
        """Prompt reservation + the longest response of rollout and evaluation."""
        return self.cfg.data.max_prompt_tokens + max(self.cfg.rollout.max_new_tokens, self.cfg.eval.max_new_tokens)

    def micro_batch(self) -> MicroBatch:
        tokens = self.cfg.optim.micro_batch_tokens
        width = min(tokens, self.cfg.data.max_prompt_tokens + self.cfg.rollout.max_new_tokens)
        return MicroBatch(tokens, width, on_gpu=self.target.kind == "cuda")

    def shares_prompts(self) -> bool:
        """Post-train space forwards each prompt once for its samples (optim.shared_prompt_forward)."""
        post = any(p.space == Space.post for p in self.training_phases())
        return post and self.cfg.optim.shared_prompt_forward and not self.cfg.model.gradient_checkpointing


def resident(x: Setup) -> list[Item]:
    """What stays allocated between phases."""
    w = x.precision.weights
    items = [Item("weights", x.held() * w, "policy"), Item("optimizer", 2 * x.held() * w, "AdamW moments")]
    if x.uses_reference:
        items.append(Item("reference", x.held() * w, "KL reference weights"))
    if x.uses_critic:
        items.append(Item("critic", 3 * x.critic_held() * w, "critic weights and AdamW moments"))
    return items


def autocast_copies(x: Setup, linear_params: int) -> list[Item]:
    """torch.autocast caches a compute-dtype copy of every weight a linear casts, for the whole block;
    under FSDP2 the copies are of the gathered (whole) weights."""
    if not x.precision.casts:
        return []
    return [Item("autocast", linear_params * x.precision.compute, "compute-dtype copies of the linear weights")]


def gathered(x: Setup, what: str) -> list[Item]:
    """``fsdp.full_weights``: every unit whole on every rank, beside the shards."""
    return [Item("gathered", x.shape.params * x.precision.weights, what)] if x.sharded else []


# --- rollout and evaluation -----------------------------------------------------------------------


def vllm_dtype_bytes(x: Setup) -> int:
    """The engine's dtype: ``rollout.vllm.dtype``, else the compute dtype (issue #35)."""
    v = x.cfg.rollout.vllm
    return DTYPE_BYTES[v.dtype] if v.dtype else x.precision.compute


def vllm_model_len(x: Setup) -> int:
    return x.cfg.rollout.vllm.max_model_len or x.longest_sequence()


def vllm_kv_room(x: Setup) -> tuple[int, int, int]:
    """(vLLM's share, its weights, KV bytes per token) on one device. The engine is built untied
    (prerl/rollout/vllm.py): a tied model costs one more V × H matrix; tensor parallelism splits the
    weights and the key/value heads (at least one head per rank)."""
    s, v, b = x.shape, x.cfg.rollout.vllm, vllm_dtype_bytes(x)
    assert x.target.device_bytes is not None
    share = int(v.gpu_memory_utilization * x.target.device_bytes)
    weights = (s.params + (s.vocab * s.hidden if s.tied else 0)) * b // v.tensor_parallel_size
    kv_heads = max(1, s.kv_heads // v.tensor_parallel_size)
    return share, weights, 2 * s.layers * kv_heads * s.head_dim * b


VLLM_REMEDIES = ("a lower rollout.vllm.gpu_memory_utilization",)


def vllm_rollout(x: Setup) -> PhaseMemory:
    items = resident(x)
    notes: list[str] = []
    if x.target.kind != "cuda" or x.target.device_bytes is None:
        notes.append("vLLM's memory on a CPU (VLLM_CPU_KVCACHE_SPACE) is not planned")
        return PhaseMemory("rollout (vLLM)", tuple(items), tuple(notes), remedies=VLLM_REMEDIES)
    share, weights, per_token = vllm_kv_room(x)
    items.append(Item("vLLM", share, f"gpu_memory_utilization={x.cfg.rollout.vllm.gpu_memory_utilization}"))
    if x.sharded:
        items.append(Item("gathered", x.shape.largest_tensor * x.precision.weights, "one whole tensor pushed"))
    room = share - weights
    length = vllm_model_len(x)
    notes.append(
        f"vLLM: {gib(weights)} GiB of weights, at most {gib(max(room, 0))} GiB of KV cache: "
        f"{max(room, 0) // (per_token * length)} sequences of max_model_len={length} at once"
    )
    return PhaseMemory("rollout (vLLM)", tuple(items), tuple(notes), remedies=VLLM_REMEDIES)


def generate_calls(
    x: Setup, prompts: Optional[int], samples: int, new_tokens: int
) -> tuple[dict[int, int], Optional[str]]:
    """The generate calls of the transformers engine that may hold the most, as {prompts: prompt width},
    and the engine's refusal, if it refuses. The engine fits as many whole groups of ``samples`` into a
    call as ``rollout.batch_samples`` and ``rollout.batch_tokens`` allow, each prompt padded to the
    batch's longest (``prompts_per_call``, prerl/rollout/hf.py): shorter prompts let more of them into a
    call, so each count of prompts is planned at the widest prompts that allow it, up to the reservation
    ``data.max_prompt_tokens``, and never more prompts than there are (None: a set large enough to fill
    a call, as an eval set). Prompts whose samples exceed ``rollout.batch_tokens`` alone are refused by
    the engine: such a call is planned as the one prompt it would hold, with the engine's reason."""
    calls: dict[int, int] = {}
    refused: Optional[str] = None
    for width in range(x.cfg.data.max_prompt_tokens, 0, -1):  # the widest first: each count at its widest
        try:
            count = prompts_per_call(width, samples, new_tokens, x.cfg.rollout)
        except ConfigError as err:
            refused, count = refused or str(err), 1
        calls.setdefault(count if prompts is None else min(count, prompts), width)
    return calls, refused


def kv_cache_bytes(x: Setup, rows: int, positions: int) -> int:
    """prerl/rollout/decode.py's preallocated cache: keys in the dtype they leave rotary in (the
    weights', where the cos/sin tables are), values in the compute dtype."""
    s, p = x.shape, x.precision
    per_position = s.layers * s.kv_heads * s.head_dim * (p.weights + p.compute)
    return rows * positions * per_position


def generate_call(x: Setup, name: str, call_prompts: int, width: int, samples: int, new_tokens: int) -> PhaseMemory:
    """One generate call of ``call_prompts`` prompts padded to ``width`` tokens, ``samples`` each."""
    s, p = x.shape, x.precision
    rows, positions = call_prompts * samples, width + new_tokens
    kv = kv_cache_bytes(x, rows, positions)
    # the prefill fills a cache of one row per prompt, repeated per sample (``batch_repeat_interleave``):
    # both are held while it is copied
    prefill_kv = kv_cache_bytes(x, call_prompts, positions)
    # the prompts' forward (no gradient): one layer's buffers and its [P, P] mask at a time
    prefill = call_prompts * width * (2 * s.hidden * p.weights + 3 * s.intermediate * p.compute + width * p.compute)
    sampling = 3 * rows * s.vocab * 4 + rows * s.vocab * p.compute  # softmax, cumsum, sort (fp32), logits
    bookkeeping = rows * (2 * positions + new_tokens) * 8  # the attention mask, its copy per sample, the tokens
    items = resident(x) + autocast_copies(x, s.linear_params) + gathered(x, "whole weights to sample")
    items += [
        Item("KV cache", kv + prefill_kv, f"{rows} sequences × {positions} positions, and the prefill's"),
        Item("activations", max(prefill, sampling) + bookkeeping, "prefill or sampling buffers"),
    ]
    return PhaseMemory(name, tuple(items))


def hf_generate(
    x: Setup, name: str, prompts: Optional[int], samples: int, new_tokens: int, shorter: tuple[str, ...] = ()
) -> PhaseMemory:
    """The transformers engine's generate call that holds the most. ``shorter``: settings of the phase's
    responses that would shrink it (beside fewer prompts per call, while a call holds more than one)."""
    calls, refused = generate_calls(x, prompts, samples, new_tokens)
    planned = {count: generate_call(x, name, count, width, samples, new_tokens) for count, width in calls.items()}
    count, phase = max(planned.items(), key=lambda call: call[1].total)
    fewer = ("a smaller rollout.batch_tokens (KV-cache positions per generate call) or rollout.batch_samples",)
    width = calls[count]
    note = (
        f"the generate call that holds the most: {count} prompt(s) of {width} tokens × {samples} samples, "
        f"{count * samples * (width + new_tokens)} KV-cache positions (rollout.batch_tokens={x.cfg.rollout.batch_tokens})"
    )
    return replace(phase, notes=(note,), refused=refused, remedies=(fewer if count > 1 else ()) + shorter)


def rollout(x: Setup) -> Optional[PhaseMemory]:
    engine = x.cfg.rollout.engine
    if engine == "vllm":
        return vllm_rollout(x)
    if engine != "hf":
        return None  # the oracle engines hold no model
    r = x.cfg.rollout
    prompts = -(-x.cfg.prompts_per_step // x.target.ranks)
    return hf_generate(x, "rollout", prompts, r.samples_per_prompt, r.max_new_tokens)


def eval_problems(x: Setup) -> Optional[int]:
    """Problems of the largest eval set one rank samples, where the config tells (the mini data's
    splits, or a ``limit``); None for a benchmark read in full."""
    sizes = []
    for name, s in x.cfg.eval.sets.items():
        split = {"test": x.cfg.data.test_problems, "ood": x.cfg.data.ood_problems}.get(name)
        size = s.limit if s.limit is not None else split if x.cfg.data.name == "mini" and s.benchmark is None else None
        if size is None:
            return None
        sizes.append(size)
    return -(-max(sizes) // x.target.ranks) if sizes else None


def evaluation(x: Setup) -> Optional[PhaseMemory]:
    """Evaluation with the transformers engine (a vLLM engine evaluates within its rollout share)."""
    if x.cfg.rollout.engine != "hf":
        return None
    ev = x.cfg.eval
    shorter = ("a smaller eval.max_new_tokens",)
    return hf_generate(x, "evaluation", eval_problems(x), ev.samples_per_prompt, ev.max_new_tokens, shorter)


# --- scoring and the update -------------------------------------------------------------------------


def scoring(x: Setup) -> Optional[PhaseMemory]:
    """No-gradient forwards before the update: the policy's old log-probs, the reference's, critic values."""
    algo, phases = x.cfg.algorithm, x.training_phases()
    policy = any(p.reuses_rollout for p in phases) or algo.kl.placement == KLPlacement.reward
    if not (policy or x.uses_reference or x.uses_critic):
        return None
    forward = no_grad_peak(x.shape, x.precision, x.micro_batch())
    items = resident(x) + gathered(x, "whole weights of the scored model")
    if policy:
        items += autocast_copies(x, x.shape.linear_params)
    elif x.precision.casts:  # a frozen model's weights are cast per use, one at a time
        items.append(Item("autocast", x.shape.largest_tensor * x.precision.compute, "one cast weight"))
    items.append(Item("activations", forward, "one micro-batch, no gradient"))
    return PhaseMemory("scoring", tuple(items), remedies=("a smaller optim.micro_batch_tokens",))


def shared_contexts(x: Setup) -> list[Item]:
    """Post-train space with shared prompts (prerl/train/logprobs.py ``context_states``): what the prompts'
    forward keeps stays for the whole update, with their keys and values as leaves, and every row of a
    micro-batch carries its prompt's keys and values."""
    if not x.shares_prompts():
        return []
    s, p, mb = x.shape, x.precision, x.micro_batch()
    prompts, width = -(-x.cfg.prompts_per_step // x.target.ranks), x.cfg.data.max_prompt_tokens
    kv_heads = s.kv_heads if mb.grouped_kv else s.heads
    contexts = s.layers * layer_bytes(s, p, MicroBatch(prompts * width, width, mb.on_gpu))
    leaves = 2 * s.layers * prompts * width * s.kv_heads * s.head_dim * p.compute
    rows = min(mb.tokens, prompts * x.cfg.rollout.samples_per_prompt)
    per_row = 2 * s.layers * width * kv_heads * s.head_dim * p.compute
    return [Item("activations", contexts + leaves + rows * per_row, "shared prompts' forward and keys/values")]


def fsdp_units(x: Setup, layer: int, root: int) -> list[Item]:
    """FSDP2 during a forward and backward: the root unit stays whole (prerl/parallel/fsdp.py), a decoder layer
    is gathered while the next is prefetched, and a unit's whole gradients wait for their reduce-scatter
    (with its input buffer)."""
    if not x.sharded:
        return []
    w = x.precision.weights
    return [
        Item("gathered", (root + 2 * layer) * w, "root and two layers whole"),
        Item("gradients", 2 * max(layer, root) * w, "a unit's whole gradients and their reduce-scatter input"),
    ]


def training_remedies(x: Setup) -> tuple[str, ...]:
    """What shrinks a backward's activations: recomputing them (where not on already), smaller micro-batches."""
    recompute = () if x.cfg.model.gradient_checkpointing else ("model.gradient_checkpointing=true",)
    return recompute + ("a smaller optim.micro_batch_tokens",)


def update(x: Setup) -> PhaseMemory:
    s, p = x.shape, x.precision
    activations = update_peak(s, p, x.micro_batch(), x.cfg.model.gradient_checkpointing)
    items = resident(x) + [Item("gradients", x.held() * p.weights, "policy")] + autocast_copies(x, s.linear_params)
    items += [Item("activations", activations, f"micro-batch of {x.cfg.optim.micro_batch_tokens} tokens")]
    items += shared_contexts(x) + fsdp_units(x, s.layer_params, s.root_params)
    return PhaseMemory("update", tuple(items), remedies=training_remedies(x))


def optimizer_step(x: Setup) -> PhaseMemory:
    w = x.precision.weights
    grads = x.held() * w
    temporary = grads if x.target.kind == "cuda" else x.shape.largest_tensor * w
    if not x.sharded and x.target.ranks > 1:
        temporary = max(temporary, x.shape.params * w)  # distributed.all_reduce_grads' flat buffer
    items = resident(x) + [Item("gradients", grads), Item("optimizer", temporary, "AdamW / all-reduce temporary")]
    return PhaseMemory("optimizer step", tuple(items))


def critic_update(x: Setup) -> Optional[PhaseMemory]:
    if not x.uses_critic:
        return None
    s, p = x.shape, x.precision
    trunk = replace(s, vocab=1, head_params=0)  # a scalar value head instead of the LM head
    activations = update_peak(trunk, p, x.micro_batch(), x.cfg.model.gradient_checkpointing)
    critic_linear = s.linear_params - s.vocab * s.hidden + s.hidden + 1
    items = resident(x) + [Item("gradients", x.critic_held() * p.weights)] + autocast_copies(x, critic_linear)
    items += [Item("activations", activations)] + fsdp_units(x, s.layer_params, s.root_params - s.head_params)
    return PhaseMemory("critic update", tuple(items), remedies=training_remedies(x))


# The phases of a step, in order: each returns None where the config has no such phase.
PHASES: dict[str, Callable[[Setup], Optional[PhaseMemory]]] = {
    "rollout": rollout,
    "scoring": scoring,
    "update": update,
    "optimizer step": optimizer_step,
    "critic update": critic_update,
    "evaluation": evaluation,
}


def plan_phases(x: Setup) -> list[PhaseMemory]:
    return [phase for fn in PHASES.values() if (phase := fn(x)) is not None]


def gib(n: float) -> str:
    return f"{n / 2**30:.1f}"
