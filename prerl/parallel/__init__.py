"""Data parallelism under torchrun (one all-reduce per update) and FSDP2 sharding."""
