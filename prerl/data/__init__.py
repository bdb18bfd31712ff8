"""The prompts: synthetic tasks generated from a seed, MATH train and the eval sets, as ``datasets`` splits."""

from prerl.moved import attribute_moved

__getattr__ = attribute_moved("prerl.data", "prerl.data.splits")
