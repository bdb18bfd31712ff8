"""The policy and its tokenizer: a Hub or local checkpoint, the GGUF-shipped real model, or the mini models
built from a seed (shipped in ``shipped/``)."""

from prerl.moved import attribute_moved

__getattr__ = attribute_moved("prerl.models", "prerl.models.loading")
