"""Training: the trainer's loop, the update, log-probabilities, the critic and checkpoints."""
