"""The algorithm's parts as side-effect-free functions in typed registries: advantages, policy losses, KL
estimators, objectives (PSR/NSR x PreRL/RL) and rollout corrections; plug-ins join the same registries."""
