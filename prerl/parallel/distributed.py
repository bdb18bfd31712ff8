"""Data parallelism under ``torchrun``: each rank rolls out its share of the step's prompts, and
gradients are summed across ranks once per update.

Every rank normalises its loss by the *global* token (or sequence) count, and the accumulated
gradients are all-reduced with SUM before clipping, so N processes take exactly the step one process
takes on the whole batch. This is DDP's all-reduce done once per update by hand: ``DistributedDataParallel``
reduces on every ``backward``, and here ranks run different numbers of micro-batches (token-budget
packing; NSR skips correct samples, so a rank can have none), which would leave DDP's collectives
unmatched. With one process every helper is a no-op. Under ``distributed.strategy=fsdp2`` the models
are sharded instead (prerl/parallel/fsdp.py) and FSDP2's own reduce-scatter sums their gradients.
"""

from __future__ import annotations

import os
import random
from typing import Iterable

import numpy as np
import torch
import torch.distributed as dist
from torch.distributed.tensor import DTensor

from prerl.algo.normaliser import Normaliser
from prerl.parallel import fsdp
from prerl.tracking.cost import TOKEN_COSTS

# distributed.strategy: how each rank holds a model (applied to the policy, reference and critic before
# their optimizers are built), as ``STRATEGIES[name](model, compute_dtype)``. replicate: a full copy,
# gradients all-reduced by ``all_reduce_grads``; fsdp2: sharded over the ranks (prerl/parallel/fsdp.py), gathered
# in the compute dtype (model.autocast) when one is set.
STRATEGIES = {"replicate": lambda model, compute_dtype=None: model, "fsdp2": fsdp.shard}  # config.STRATEGY_NAMES

# Gradients are all-reduced in buckets of at most this many bytes (DDP's default bucket_cap_mb is 25):
# one flat copy of all of them would add a whole model's gradients to the update's peak memory.
GRAD_BUCKET_BYTES = 25 * 2**20

# Additive metrics: each rank holds its share of the global value (loss is normalised globally).
SUMMED_METRICS = {
    "train/loss",
    "train/pg_loss",
    "train/kl_loss",
    "train/kept_tokens",
    "critic/value_loss",
    "time/tokens_per_s",
    *TOKEN_COSTS,
}
SUMMED_PREFIXES = ("train/prompts/",)  # prompt counts


def summed(key: str) -> bool:
    return key in SUMMED_METRICS or key.startswith(SUMMED_PREFIXES)


def init() -> None:
    """Join the process group when started by ``torchrun`` or as SLURM tasks (gloo on CPU, NCCL on GPUs)."""
    submitit_tasks = os.environ.get("SUBMITIT_EXECUTOR") == "slurm" and int(os.environ.get("SLURM_NTASKS", "1")) > 1
    if "WORLD_SIZE" not in os.environ and submitit_tasks:
        # One SLURM task per GPU (the submitit launcher, conf/hydra/launcher/slurm.yaml): export the
        # variables torchrun would set. Every task keeps all GPUs visible: vLLM's tensor-parallel
        # ranks pick theirs by LOCAL_RANK.
        from submitit.helpers import TorchDistributedEnvironment

        TorchDistributedEnvironment().export(set_cuda_visible_devices=False, overwrite=True)  # keeps a set MASTER_PORT
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or dist.is_initialized():
        return
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")


def shutdown() -> None:
    """Leave the process group once every rank is done. A group left to interpreter exit can abort a
    finished process ("terminate called without an active exception": gloo's threads destroyed while
    a peer is still in its last collective or writing its files)."""
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def check_world(prompts_per_step: int) -> None:
    """Every rank needs a prompt: a rank with none would fail mid-step while the others wait on it."""
    if prompts_per_step < world_size():
        raise ValueError(
            f"prompts_per_step={prompts_per_step} is below the {world_size()} processes; "
            "every rank needs at least one prompt"
        )


def seed_process(seed: int, ranks_per_engine: int = 1) -> None:
    """Seed Python's, numpy's and torch's global generators alike on the ranks that share one rollout engine
    and apart across engines: ``seed`` + the engine's index. The ranks of a vLLM tensor-parallel engine
    sample every token on each rank and must draw alike, and vLLM 0.32's GPU model runner draws each
    request's seed from numpy's generator, which would repeat across engines. Call it before the engine is
    built, so that what it draws at start-up agrees too; with one rank per engine rank r gets seed + r."""
    engine = rank() // ranks_per_engine
    random.seed(seed + engine)
    np.random.seed(seed + engine)
    torch.manual_seed(seed + engine)


def world_size() -> int:
    return dist.get_world_size() if dist.is_initialized() else 1


def rank() -> int:
    return dist.get_rank() if dist.is_initialized() else 0


def is_main() -> bool:
    return rank() == 0


def shard(items: list) -> list:
    """This rank's share of a global batch: contiguous slices, sizes differing by at most one."""
    n, w, r = len(items), world_size(), rank()
    return items[r * n // w : (r + 1) * n // w]


def consecutive_subgroup(size: int):
    """This rank's process group among ranks taken ``size`` at a time (0..size−1, size..2·size−1, ...)."""
    group, _ = dist.new_subgroups_by_enumeration([list(range(s, s + size)) for s in range(0, world_size(), size)])
    return group


def local_count(n: int) -> int:
    """How many of ``n`` global items ``shard`` gives this rank."""
    return len(shard(list(range(n))))


def smallest_local_count(n: int) -> int:
    """The smallest share ``shard`` gives any rank of ``n`` items."""
    return n // world_size()


def mini_batch_count(wanted: int, prompts: int) -> int:
    """Mini-batches (optimizer steps) per epoch that every rank can take, when the ``prompts`` of a step
    are sharded over the ranks: each step all-reduces gradients, so all ranks must take the same number,
    at most one per prompt of the smallest share."""
    return min(wanted, smallest_local_count(prompts))


def largest_local_count(n: int) -> int:
    """The largest share ``shard`` gives any rank of ``n`` items (rank sizes differ by at most one)."""
    return -(-n // world_size())


def sum_counts(counts: list[int]) -> list[int]:
    """Each count summed over ranks, identical on every rank (so a decision made from it is too)."""
    if world_size() == 1:
        return list(counts)
    totals = torch.tensor(counts, dtype=torch.int64, device=_device())
    dist.all_reduce(totals)
    return [int(t) for t in totals.tolist()]


def gather_to_main(obj) -> list | None:
    """Every rank's ``obj`` on rank 0, in rank order; ``None`` on the other ranks."""
    if world_size() == 1:
        return [obj]
    gathered: list | None = [None] * world_size() if is_main() else None
    dist.gather_object(obj, gathered, dst=0)
    return gathered


def check_same(obj, what: str):
    """``obj``, after checking that every rank holds the same (compared with ``==``); a mismatch raises on
    every rank together, so none is left waiting in a collective."""
    if world_size() == 1:
        return obj
    gathered: list = [None] * world_size()
    dist.all_gather_object(gathered, obj)
    if any(g != gathered[0] for g in gathered):
        raise RuntimeError(f"ranks disagree on {what}: {gathered}")
    return obj


def _device() -> torch.device:
    return torch.device("cuda") if dist.is_initialized() and dist.get_backend() == "nccl" else torch.device("cpu")


def normaliser(mask: torch.Tensor, scale: float) -> Normaliser:
    """The loss denominators of the whole global batch (``Normaliser.of`` over all ranks' masks)."""
    if world_size() == 1:
        return Normaliser.of(mask, scale)
    counts = torch.tensor([float(mask.sum()), float((mask.sum(-1) > 0).sum())], device=_device())
    dist.all_reduce(counts)
    return Normaliser(tokens=max(float(counts[0]), 1.0), sequences=max(float(counts[1]), 1.0), scale=float(scale))


def all_reduce_grads(params: Iterable[torch.nn.Parameter]) -> None:
    """Sum the accumulated gradients over ranks (a rank that trained on nothing contributes zeros).
    Sharded (FSDP2) parameters are skipped: their backward already reduce-scattered the sums."""
    if world_size() == 1:
        return
    params = [p for p in params if p.requires_grad and not isinstance(p, DTensor)]
    if not params:
        return
    grads = []
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
        grads.append(p.grad)
    for bucket in buckets(grads, GRAD_BUCKET_BYTES):
        if len(bucket) == 1 and bucket[0].is_contiguous():  # in place, no copy
            dist.all_reduce(bucket[0])
            continue
        flat = torch.cat([g.reshape(-1) for g in bucket])
        dist.all_reduce(flat)
        for g, part in zip(bucket, flat.split([g.numel() for g in bucket])):
            g.copy_(part.view_as(g))


def buckets(tensors: list[torch.Tensor], cap_bytes: int) -> list[list[torch.Tensor]]:
    """``tensors`` in order, cut into runs of one dtype and device of at most ``cap_bytes`` each (a larger
    tensor is a run of its own)."""
    runs: list[list[torch.Tensor]] = []
    size = 0
    for t in tensors:
        nbytes = t.numel() * t.element_size()
        last = runs[-1][-1] if runs else None
        if last is not None and size + nbytes <= cap_bytes and (last.dtype, last.device) == (t.dtype, t.device):
            runs[-1].append(t)
            size += nbytes
        else:
            runs.append([t])
            size = nbytes
    return runs


def reduce_metrics(metrics: dict[str, float]) -> dict[str, float]:
    """Metrics of the global batch: sums for additive ones (``summed``), means for the rest."""
    if world_size() == 1:
        return metrics
    keys = sorted(metrics)
    # every rank must reduce the same keys in the same order
    gathered: list = [None] * world_size()
    dist.all_gather_object(gathered, keys)
    if any(g != keys for g in gathered):
        raise RuntimeError(f"ranks logged different metric keys: {gathered}")
    values = torch.tensor([float(metrics[k]) for k in keys], dtype=torch.float64, device=_device())
    dist.all_reduce(values)
    return {k: float(v) if summed(k) else float(v) / world_size() for k, v in zip(keys, values.tolist())}


def broadcast(obj):
    """Rank 0's value of ``obj`` on every rank (e.g. the output folder Hydra named by the clock)."""
    if world_size() == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]
