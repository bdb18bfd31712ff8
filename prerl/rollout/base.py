"""The rollout interface: token ids in, sampled responses (trimmed at EOS) out."""

from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass
from typing import Callable, Optional, Protocol

from prerl.config.schema import RolloutConfig


@dataclass
class Rollout:
    """``n`` responses per prompt, flattened prompt-major: response ``i`` answers prompt ``group[i]``."""

    prompt_ids: list[list[int]]  # one entry per prompt
    response_ids: list[list[int]]  # one entry per response; ends with EOS unless truncated
    group: list[int]
    truncated: list[bool]  # hit max_new_tokens without EOS
    texts: list[str]  # decoded responses, special tokens removed
    # per response, aligned with ``response_ids``: log π_sampler of each drawn token under the distribution
    # it was drawn from (temperature, and top-p renormalised); None from engines that sample nothing
    sample_logprobs: Optional[list[list[float]]] = None


@dataclass(frozen=True)
class RunNeeds:
    """What a run will ask of its engine, for an engine that sizes itself once at start-up (vLLM)."""

    sequence_tokens: Optional[int] = None  # longest prompt + response (``TrainConfig.sequence_tokens``)
    compute_dtype: Optional[str] = None  # the dtype forwards compute in (model.autocast, else model.dtype)

    @classmethod
    def of(cls, cfg, device) -> RunNeeds:
        """The needs of the run ``cfg`` (a ``TrainConfig``) on ``device`` (where ``model.autocast=auto``
        resolves)."""
        from prerl.models.loading import compute_dtype

        return cls(cfg.sequence_tokens(), compute_dtype(cfg.model, device) or cfg.model.dtype)


class RolloutEngine(Protocol):
    """An engine is built as ``factory(model, tokenizer, cfg)``, with ``needs=RunNeeds`` when the factory
    takes that keyword. Optional, on the factory: ``ranks_per_engine(cfg) -> int``, how many consecutive
    ranks one engine spans (vLLM's tensor-parallel group; 1 when absent). Optional, on the engine:
    ``forwards_policy`` (default True), whether ``generate`` runs the training model's own forward, so that
    its weights must be whole under fsdp2 (``fsdp.full_weights``)."""

    def generate(
        self, prompt_ids: list[list[int]], n: int, temperature: float, top_p: float, max_new_tokens: int
    ) -> Rollout:
        """``n`` responses per prompt, sampled at ``temperature`` (0 = greedy decoding), with each drawn
        token's log-probability (``Rollout.sample_logprobs``) where the engine samples."""

    def sync_weights(self) -> None:
        """Make the engine sample from the policy's current weights (a no-op when they are shared)."""


def trim_at_eos(ids: list[int], eos_id: int) -> tuple[list[int], bool]:
    """``ids`` up to and including the first EOS (kept: the policy learns to stop), and whether there is
    none (the response was truncated at ``max_new_tokens``): what every engine returns."""
    if eos_id in ids:
        return ids[: ids.index(eos_id) + 1], False
    return ids, True


ROLLOUT_ENGINES: dict[str, str] = {  # name -> "module:factory", imported lazily (vLLM is optional)
    "hf": "prerl.rollout.hf:HFEngine",
    "oracle": "prerl.rollout.oracle:OracleEngine",  # reference solutions: checks loaders and scorers
    "shuffled_oracle": "prerl.rollout.oracle:ShuffledOracleEngine",  # another problem's reference
    "vllm": "prerl.rollout.vllm:VLLMEngine",  # optional extra: vllm is imported only when chosen
}


def register_engine(name: str, target: str) -> None:
    ROLLOUT_ENGINES[name] = target


def engine_factory(cfg: RolloutConfig) -> Callable[..., RolloutEngine]:
    """The registered factory of ``rollout.engine`` (its module imported; vLLM itself is not)."""
    if cfg.engine not in ROLLOUT_ENGINES:
        raise ValueError(f"rollout.engine={cfg.engine!r}: choose one of {sorted(ROLLOUT_ENGINES)}")
    module, factory = ROLLOUT_ENGINES[cfg.engine].split(":")
    return getattr(importlib.import_module(module), factory)


def make_engine(cfg: RolloutConfig, model, tokenizer, needs: Optional[RunNeeds] = None) -> RolloutEngine:
    build = engine_factory(cfg)
    if needs is not None and "needs" in inspect.signature(build).parameters:
        return build(model, tokenizer, cfg, needs=needs)
    return build(model, tokenizer, cfg)


def ranks_per_engine(cfg: RolloutConfig) -> int:
    """How many consecutive ranks share one engine (and so must sample alike): 1 unless the engine says."""
    spans = getattr(engine_factory(cfg), "ranks_per_engine", None)
    return spans(cfg) if spans is not None else 1


def select_groups(rollout: Rollout, groups: list[int]) -> Rollout:
    """The responses of the prompts ``groups`` (in that order), re-indexed 0..len(groups)−1."""
    new_index = {g: i for i, g in enumerate(groups)}
    keep = sorted(
        (i for i, g in enumerate(rollout.group) if g in new_index), key=lambda i: (new_index[rollout.group[i]], i)
    )
    return Rollout(
        prompt_ids=[rollout.prompt_ids[g] for g in groups],
        response_ids=[rollout.response_ids[i] for i in keep],
        group=[new_index[rollout.group[i]] for i in keep],
        truncated=[rollout.truncated[i] for i in keep],
        texts=[rollout.texts[i] for i in keep],
        sample_logprobs=None if rollout.sample_logprobs is None else [rollout.sample_logprobs[i] for i in keep],
    )


def concat(rollouts: list[Rollout]) -> Rollout:
    """The rollouts one after another; the sampler's log-probs kept when every part has them."""
    out = Rollout([], [], [], [], [], [])
    for r in rollouts:
        offset = len(out.prompt_ids)
        out.prompt_ids += r.prompt_ids
        out.response_ids += r.response_ids
        out.group += [g + offset for g in r.group]
        out.truncated += r.truncated
        out.texts += r.texts
        if out.sample_logprobs is not None and r.sample_logprobs is not None:
            out.sample_logprobs += r.sample_logprobs
        else:
            out.sample_logprobs = None
    return out
