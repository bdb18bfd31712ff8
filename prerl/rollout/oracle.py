"""Oracle rollout engines: answer each problem with a reference response instead of sampling.

``oracle`` answers with the problem's own reference (its worked solution, or a response its scorer
accepts); ``shuffled_oracle`` with the reference of another problem of the same set (a fixed
derangement). Together they check a benchmark's loader and scorer end to end: the first must score
~100%, the second ~0% (plus answers that coincide by chance). The evaluator hands over the references
with ``set_references`` before generating; every one of the ``n`` samples is the same response.
"""

from __future__ import annotations

import numpy as np

from prerl.config.schema import RolloutConfig
from prerl.rollout.base import Rollout


class OracleEngine:
    shuffled = False
    forwards_policy = False  # answers from the references: the policy's weights are never used

    def __init__(self, model, tokenizer, cfg: RolloutConfig):
        self.tokenizer, self.cfg = tokenizer, cfg
        # prompt -> its references in order: identical prompts (BBH has some) keep their own answers
        self.references: dict[tuple[int, ...], list[str]] = {}
        self.served: dict[tuple[int, ...], int] = {}

    def sync_weights(self) -> None:
        pass

    def set_references(self, prompt_ids: list[list[int]], references: list[str], seed: int = 0, first: int = 0) -> None:
        """Register the response to give for each prompt (a derangement of them when shuffled). ``first``:
        the prompts will be asked for from that row on (a rank's shard), earlier ones count as served."""
        if len(prompt_ids) != len(references):
            raise ValueError(f"oracle: {len(prompt_ids)} prompts but {len(references)} references")
        if self.shuffled:
            references = [references[j] for j in derangement(len(references), seed)]
        self.references, self.served = {}, {}
        for p, r in zip(prompt_ids, references):
            self.references.setdefault(tuple(p), []).append(r)
        for p in prompt_ids[:first]:
            self.served[tuple(p)] = self.served.get(tuple(p), 0) + 1

    def generate(self, prompt_ids, n, temperature, top_p, max_new_tokens) -> Rollout:
        texts, responses = [], []
        eos = self.tokenizer.eos_token_id
        for p in prompt_ids:
            key = tuple(p)
            if key not in self.references:
                raise KeyError("oracle: no reference registered for this prompt; call set_references first")
            options, count = self.references[key], self.served.get(key, 0)
            self.served[key] = count + 1
            text = options[count % len(options)]  # the k-th occurrence of a prompt gets the k-th reference
            ids = self.tokenizer(text, add_special_tokens=False)["input_ids"] + [eos]
            texts += [text] * n
            responses += [list(ids) for _ in range(n)]
        group = [i for i in range(len(prompt_ids)) for _ in range(n)]
        return Rollout(prompt_ids, responses, group, [False] * len(responses), texts)


class ShuffledOracleEngine(OracleEngine):
    shuffled = True


def derangement(n: int, seed: int = 0) -> list[int]:
    """A seeded permutation of range(n) with no fixed point (identity when n < 2)."""
    if n < 2:
        return list(range(n))
    rng = np.random.default_rng(seed)
    while True:
        perm = rng.permutation(n)
        if not np.any(perm == np.arange(n)):
            return perm.tolist()
