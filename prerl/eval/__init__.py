"""Evaluation: Avg@K and Pass@k of a policy on the eval sets, the statistics behind the tables, and the
reasoning-behaviour counters."""
