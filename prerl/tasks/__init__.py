"""Synthetic tasks generated from a seed: the real-model task (word problems). The mini models' own task
lives with them in ``prerl.mini``."""
