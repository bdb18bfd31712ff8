"""Rollouts from a ``transformers`` model: batched, KV-cached, sharing weights with the policy."""

from __future__ import annotations

import torch

from prerl.config.schema import ConfigError, RolloutConfig
from prerl.models.loading import eager
from prerl.rollout import decode
from prerl.rollout.base import Rollout, trim_at_eos


def prompts_per_call(width: int, n: int, max_new_tokens: int, cfg: RolloutConfig) -> int:
    """Prompts per generate call: at most ``rollout.batch_samples // n`` (at least one), and no more than
    ``rollout.batch_tokens`` KV-cache positions, each prompt's ``n`` samples holding ``width + max_new_tokens``
    positions each (``decode.sample`` preallocates them). One prompt over the budget is an error: its samples
    are decoded together, and memory would run out mid-rollout. The memory plan plans the calls this allows
    and refuses what it refuses (prerl/plan/memory.py ``generate_calls``)."""
    per_prompt = n * (width + max_new_tokens)
    if per_prompt > cfg.batch_tokens:
        raise ConfigError(
            f"the transformers engine's KV cache for one prompt's {n} samples is {per_prompt} positions ({n} × "
            f"({width} prompt + {max_new_tokens} new tokens)), over rollout.batch_tokens={cfg.batch_tokens}: raise "
            "rollout.batch_tokens if the memory allows, sample fewer or shorter responses, or use rollout=vllm"
        )
    return max(1, min(cfg.batch_samples // n, cfg.batch_tokens // per_prompt))


class HFEngine:
    forwards_policy = True  # generates with the training model itself

    def __init__(self, model, tokenizer, cfg: RolloutConfig):
        self.model, self.tokenizer, self.cfg = model, tokenizer, cfg
        self.eos_id = tokenizer.eos_token_id
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.eos_id

    def sync_weights(self) -> None:  # the engine samples from the training model itself
        pass

    @torch.inference_mode()
    def generate(self, prompt_ids, n, temperature, top_p, max_new_tokens) -> Rollout:
        if not prompt_ids:  # a rank with no problem of a small eval set
            return Rollout([], [], [], [], [])
        per_call = prompts_per_call(max(map(len, prompt_ids)), n, max_new_tokens, self.cfg)
        was_training = self.model.training
        self.model.eval()
        responses: list[list[int]] = []
        truncated: list[bool] = []
        logprobs: list[list[float]] = []
        try:
            for start in range(0, len(prompt_ids), per_call):
                chunk = prompt_ids[start : start + per_call]
                out, out_logprobs = self._generate_chunk(chunk, n, temperature, top_p, max_new_tokens)
                for row, row_logprobs in zip(out, out_logprobs):
                    ids, cut = trim_at_eos(row, self.eos_id)
                    responses.append(ids)
                    truncated.append(cut)
                    logprobs.append(row_logprobs[: len(ids)])
        finally:
            self.model.train(was_training)
        group = [i for i in range(len(prompt_ids)) for _ in range(n)]
        texts = self.tokenizer.batch_decode(responses, skip_special_tokens=True)
        return Rollout(prompt_ids, responses, group, truncated, texts, logprobs)

    def _generate_chunk(
        self, chunk, n, temperature, top_p, max_new_tokens
    ) -> tuple[list[list[int]], list[list[float]]]:
        # our own loop, not model.generate: see prerl/rollout/decode.py for what it saves and why;
        # eager: compiled decoder layers (model.compile) would recompile for every new cache length
        with eager():
            return decode.sample_with_logprobs(
                self.model,
                chunk,
                n,
                temperature,
                top_p,
                max_new_tokens,
                self.eos_id,
                self.pad_id,
                self.cfg.plain_decode,
            )
