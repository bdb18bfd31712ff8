"""Rollouts from a ``transformers`` model: batched, KV-cached, sharing weights with the policy."""

from __future__ import annotations

import torch

from prerl.config import RolloutConfig
from prerl.models import eager
from prerl.rollout import decode
from prerl.rollout.base import Rollout, trim_at_eos


class HFEngine:
    def __init__(self, model, tokenizer, cfg: RolloutConfig):
        self.model, self.tokenizer, self.cfg = model, tokenizer, cfg
        self.eos_id = tokenizer.eos_token_id
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.eos_id

    def sync_weights(self) -> None:  # the engine samples from the training model itself
        pass

    @torch.inference_mode()
    def generate(self, prompt_ids, n, temperature, top_p, max_new_tokens) -> Rollout:
        was_training = self.model.training
        self.model.eval()
        per_call = max(1, self.cfg.batch_samples // n)  # prompts per generate call
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
