"""The config: its schema (typed dataclasses checked as they are built), enums and generated reference."""

from prerl.moved import attribute_moved

__getattr__ = attribute_moved("prerl.config", "prerl.config.schema")
