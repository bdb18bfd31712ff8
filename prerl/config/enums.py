"""Closed choices of the schema that the loop itself acts on (a leaf module: no imports).

Open choices (losses, estimators, aggregation, sample selection, ...) are plain names checked
against their registries (``prerl/algo/registry.py``); these two are not open: ``prerl/train/logprobs.py`` builds the inputs
of each space, and the loop decides where the KL term goes.
"""

from enum import Enum


class Space(str, Enum):
    """Where the policy-gradient log-probs are scored."""

    post = "post"  # log π(y | x): prompt + response (standard RL)
    pre = "pre"  # log π(y | c): one context token + response (PreRL)


class KLPlacement(str, Enum):
    none = "none"
    loss = "loss"
    reward = "reward"
