"""One policy update of the micro model; each rank writes the bytes its weights, gradients and AdamW
moments hold, beside what the memory plan says for them (``argv[1]``: output folder, ``argv[2]``: the
``distributed.strategy``). Not collected by pytest (no ``test_`` prefix)."""

import json
import sys
from pathlib import Path

import torch
from torch.distributed.tensor import DTensor
from transformers import AutoConfig, AutoModelForCausalLM

sys.path.insert(0, str(Path(__file__).resolve().parent))  # update_worker's batch
from update_worker import KEPT, local_batch

from prerl.algo.objectives import main_phase
from prerl.config.schema import AlgorithmConfig, OptimConfig
from prerl.launch.cli import compose_checked
from prerl.parallel import distributed
from prerl.plan import plan_for
from prerl.plan.memory import Target
from prerl.train.update import policy_update


def local(t: torch.Tensor) -> torch.Tensor:
    return t.to_local() if isinstance(t, DTensor) else t


def storage_bytes(tensors) -> int:
    """Bytes of the distinct storages behind ``tensors`` (an FSDP2 shard's padding included)."""
    storages = {s.data_ptr(): s.nbytes() for s in (local(t).untyped_storage() for t in tensors)}
    return sum(storages.values())


def main(out: str, strategy: str) -> None:
    distributed.init()
    cfg = compose_checked(["experiment=smoke", "model=micro", f"distributed.strategy={strategy}"])
    plan = plan_for(cfg, Target("cpu", None, distributed.world_size()))
    items = next(p for p in plan.phases if p.name == "update").items
    planned = {c: next(i.bytes for i in items if i.category == c) for c in ("weights", "gradients", "optimizer")}
    torch.manual_seed(0)
    model = distributed.STRATEGIES[strategy](
        AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(Path(plan.source).parent))
    )
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    algo = AlgorithmConfig()
    held, step = {}, optimizer.step

    def step_recording_the_gradients(*args, **kwargs):  # the update frees them right after the step
        held["gradients"] = storage_bytes(p.grad for p in model.parameters())
        return step(*args, **kwargs)

    optimizer.step = step_recording_the_gradients
    policy_update(
        model, optimizer, local_batch(KEPT["spread"]), main_phase(algo), algo, OptimConfig(micro_batch_tokens=40), 16
    )
    params = list(model.parameters())
    measured = {
        "weights": storage_bytes(params),
        "gradients": held["gradients"],
        "optimizer": storage_bytes(optimizer.state[p][k] for p in params for k in ("exp_avg", "exp_avg_sq")),
    }
    Path(out, f"rank{distributed.rank()}.json").write_text(json.dumps({"planned": planned, "measured": measured}))
    distributed.shutdown()


if __name__ == "__main__":
    main(*sys.argv[1:])
