"""The rollout interface: token ids in, sampled responses (trimmed at EOS) out."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Callable, Optional, Protocol

from prerl.config import RolloutConfig


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


class RolloutEngine(Protocol):
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


def make_engine(cfg: RolloutConfig, model, tokenizer) -> RolloutEngine:
    if cfg.engine not in ROLLOUT_ENGINES:
        raise ValueError(f"rollout.engine={cfg.engine!r}: choose one of {sorted(ROLLOUT_ENGINES)}")
    module, factory = ROLLOUT_ENGINES[cfg.engine].split(":")
    build: Callable[..., RolloutEngine] = getattr(importlib.import_module(module), factory)
    return build(model, tokenizer, cfg)


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
