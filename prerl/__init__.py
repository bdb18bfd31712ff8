"""prerl: reinforcement learning on language-model reasoning, in pre-train space and in RL space.

The packages, from the bottom layer up (each imports only from the layers below it; tests/unit/test_layers.py
holds the rule):

- ``config``: the config schema, its enums and its generated reference;
- ``algo``: advantages, policy losses, objectives and the registries and plug-ins they live in;
- ``scoring``: the scorers that turn a response into a reward;
- ``data``: the prompts: the synthetic tasks, MATH and the eval sets;
- ``tracking``: MLflow: the run, its tags and fingerprint, the finished-run check, the cost counters;
- ``models``: loading the policy, the mini models and the GGUF-shipped real model;
- ``parallel``: torchrun data parallelism and FSDP2;
- ``rollout``: the engines that sample responses (transformers, vLLM, oracles);
- ``launch``: from a command line to a checked config;
- ``eval``: Avg@K and Pass@k, the statistics behind the tables, the behaviour counters;
- ``train``: the trainer, its update, log-probabilities, critic and checkpoints;
- ``plan``: the memory plan;
- ``commands``: ``train``, ``evaluate``, the GPU check and the task calibration.
"""

from prerl import moved

moved.install()
__getattr__ = moved.moved_submodule
