"""FSDP2 (``distributed.strategy=fsdp2``): parameters, gradients and optimizer state sharded over ranks.

Each decoder layer is one ``fully_shard`` unit and the root (embeddings, final norm, LM head) another.
What sharding changes for the rest of the code, and how it is handled here:

- Every forward (and backward) of a sharded model all-gathers each unit: a collective, so all ranks
  must run the same number. Generation and no-grad scoring run the same count on no rank, so they run
  inside ``full_weights``: the weights are gathered once and stay whole until it exits (weights fit
  one device; the optimizer state and gradients are what is sharded). The update's micro-batch loops
  are padded to the same length on every rank (``lockstep``).
- Gradients are reduce-scattered with SUM, not FSDP's default mean: the losses are normalised by the
  global batch (``distributed.normaliser``), as the replicated all-reduce expects. They are reduced once
  per optimizer step, in the last micro-batch's backward (``sync_gradients``): the micro-batches before
  it accumulate whole (unsharded) float32 gradients, a model's worth per rank, instead of sending a
  reduce-scatter each.
- With a compute dtype (``model.autocast``) the weights are gathered and computed in it
  (``MixedPrecisionPolicy``): half the all-gather traffic of float32; the shards, the optimizer step and
  the gradient reduction stay in float32.
- Checkpoints hold full tensors gathered to rank 0, laid out as ``state_dict()`` of an unsharded model
  and optimizer, so either strategy (or one process) resumes from them.

Every helper takes any model: for one that is not sharded it does what the plain module would.
"""

from __future__ import annotations

import contextlib

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
    set_model_state_dict,
    set_optimizer_state_dict,
)
from torch.distributed.fsdp import FSDPModule, MixedPrecisionPolicy, fully_shard
from torch.distributed.tensor import DTensor

GATHER = StateDictOptions(full_state_dict=True, cpu_offload=True)  # whole tensors, on rank 0's CPU only
SCATTER = StateDictOptions(full_state_dict=True)  # every rank holds the whole state and keeps its shard


def sharded(model: nn.Module) -> bool:
    return isinstance(model, FSDPModule)


def _layer_classes(model: nn.Module) -> set[str]:
    """Class names of the decoder layers, as transformers models declare them (``_no_split_modules``)."""
    return {name for m in model.modules() for name in (getattr(m, "_no_split_modules", None) or [])}


def shard(model: nn.Module, compute_dtype: torch.dtype | None = None) -> nn.Module:
    """``fully_shard`` each decoder layer, then the root, gathering the weights in ``compute_dtype`` when
    given; in one process the model stays as it is."""
    if not dist.is_initialized() or dist.get_world_size() == 1:
        return model
    mixed = MixedPrecisionPolicy(param_dtype=compute_dtype, reduce_dtype=torch.float32 if compute_dtype else None)
    layers = _layer_classes(model)
    for module in model.modules():
        if type(module).__name__ in layers:
            fully_shard(module, reshard_after_forward=True, mp_policy=mixed)
    # the root's weights are used again first by the backward: keep them (torch's own choice, made explicit
    # so that ``full_weights`` restores exactly what was set)
    fully_shard(model, reshard_after_forward=False, mp_policy=mixed)
    for unit in _units(model):  # SUM over ranks: the losses already divide by the global batch
        unit.set_gradient_divide_factor(1.0)
        unit.set_force_sum_reduction_for_comms(True)  # a plain SUM, which gloo has too
    return model


def sync_gradients(model: nn.Module, on: bool) -> None:
    """Whether the next backward reduce-scatters the gradients (off: they accumulate unsharded until a
    backward with it on). Every rank sets it alike, as the backward is a collective; no-op unsharded."""
    if isinstance(model, FSDPModule):
        model.set_requires_gradient_sync(on)


def _units(model: nn.Module) -> list[FSDPModule]:
    return [m for m in model.modules() if isinstance(m, FSDPModule)]


@contextlib.contextmanager
def full_weights(model: nn.Module):
    """Whole weights in every unit until exit, so forwards inside are local (no collective). Entering
    all-gathers them, so every rank must enter together; leaving frees them (no collective)."""
    units = _units(model)
    if not units or all(_whole(m) for m in units):  # not sharded, or inside another full_weights
        yield
        return
    resharding = [_reshards_after_forward(m) for m in units]
    with torch.no_grad():
        for m in units:
            m.set_reshard_after_forward(False, recurse=False)
            m.unshard()
    try:
        yield
    finally:
        for m, reshard in zip(units, resharding):
            m.reshard()
            m.set_reshard_after_forward(reshard, recurse=False)


def _whole(module: FSDPModule) -> bool:
    return all(g.is_unsharded for g in module._get_fsdp_state()._fsdp_param_groups)


def _reshards_after_forward(module: FSDPModule) -> bool:
    return any(g.post_forward_mesh_info is not None for g in module._get_fsdp_state()._fsdp_param_groups)


def lockstep(batches: list[list[int]], model: nn.Module) -> list[list[int]]:
    """The micro-batches, padded with empty ones to the most any rank has when forwards are collectives.
    The caller runs an empty one as a zero-weight forward and backward."""
    if not sharded(model):
        return batches
    count = torch.tensor([len(batches)], device=_device(model))
    dist.all_reduce(count, op=dist.ReduceOp.MAX)
    return batches + [[] for _ in range(int(count) - len(batches))]


def _device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def full(t):
    """A whole tensor from a sharded one (a collective), or ``t`` itself."""
    return t.full_tensor() if isinstance(t, DTensor) else t


# --- checkpoints: full state on rank 0, in the layout of an unsharded model's state_dict() --------


def model_state(model: nn.Module) -> dict:
    """``model.state_dict()``; for a sharded model gathered whole to rank 0 (empty elsewhere)."""
    return get_model_state_dict(model, options=GATHER) if sharded(model) else model.state_dict()


def load_model_state(model: nn.Module, state: dict) -> None:
    if sharded(model):
        set_model_state_dict(model, state, options=SCATTER)
    else:
        model.load_state_dict(state)


def optimizer_state(model: nn.Module, optimizer: torch.optim.Optimizer) -> dict:
    """``optimizer.state_dict()`` (parameters by index); for a sharded model gathered to rank 0."""
    if not sharded(model):
        return optimizer.state_dict()
    state = get_optimizer_state_dict(model, optimizer, options=GATHER)  # parameters by name
    return _by_index(state, _param_names(model, optimizer)) if state else state


def load_optimizer_state(model: nn.Module, optimizer: torch.optim.Optimizer, state: dict) -> None:
    if sharded(model):
        by_name = _by_name(state, _param_names(model, optimizer))
        set_optimizer_state_dict(model, optimizer, by_name, options=SCATTER)
    else:
        optimizer.load_state_dict(state)


def _param_names(model: nn.Module, optimizer: torch.optim.Optimizer) -> list[str]:
    """The name of each optimizer parameter, in ``optimizer.state_dict()``'s index order."""
    names = {id(p): n for n, p in model.named_parameters()}
    return [names[id(p)] for group in optimizer.param_groups for p in group["params"]]


def _by_index(state: dict, names: list[str]) -> dict:
    index = {n: i for i, n in enumerate(names)}
    return {
        "state": {index[n]: s for n, s in state["state"].items() if n in index},
        "param_groups": [
            {**g, "params": sorted({index[n] for n in g["params"] if n in index})} for g in state["param_groups"]
        ],
    }


def _by_name(state: dict, names: list[str]) -> dict:
    return {
        "state": {names[i]: s for i, s in state["state"].items()},
        "param_groups": [{**g, "params": [names[i] for i in g["params"]]} for g in state["param_groups"]],
    }
