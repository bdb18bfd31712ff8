"""From a command line to a checked config: Hydra composition, unknown keys and registered choices,
each reported on one line before torch loads."""
