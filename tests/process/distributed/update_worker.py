"""One policy update on a fixed global batch; under ``torchrun`` each rank updates on its share.

Writes the updated weights and the reduced stats to ``argv[1]`` (rank 0), so a test can check that
N processes take the same step as one; ``argv[2]`` is the ``distributed.strategy`` (default replicate),
``argv[3]`` the compute dtype (model.autocast; default none). Also written: how many reduce-scatters
each update sent (fsdp2), and the dtype a decoder layer's weight had in each forward. The replicated
all-reduce runs in buckets of 4 KiB here, so that the tiny model's gradients span several.
Not collected by pytest (no ``test_`` prefix).
"""

import contextlib
import sys
from pathlib import Path

import torch
import torch.distributed as dist

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # tests/helpers.py
from helpers import tiny_qwen3

from prerl.algo.objectives import main_phase
from prerl.config.schema import AlgorithmConfig, CriticConfig, OptimConfig
from prerl.parallel import distributed, fsdp
from prerl.train.critic import Critic
from prerl.train.logprobs import pack
from prerl.train.update import UpdateBatch, policy_update

# which samples are trained on: as NSR, some are not; or only the first rows, all on rank 0 of two, so
# rank 1 forwards nothing (under fsdp2 it must still join every micro-batch's collectives)
KEPT = {"spread": lambda i: i % 3 != 0, "rank0": lambda i: i < 4}


def global_batch(n: int = 10, kept=KEPT["spread"]):
    """Rows 2k and 2k + 1 answer the same prompt (a group of two)."""
    g = torch.Generator().manual_seed(0)
    distinct = [
        torch.randint(1, 40, (int(torch.randint(3, 8, (1,), generator=g)),), generator=g).tolist()
        for _ in range((n + 1) // 2)
    ]
    prompts = [distinct[i // 2] for i in range(n)]
    responses = [
        torch.randint(1, 40, (int(torch.randint(2, 12, (1,), generator=g)),), generator=g).tolist() for _ in range(n)
    ]
    advantages = torch.randn(n, generator=g)
    kept = [kept(i) for i in range(n)]
    return prompts, responses, advantages, kept


def local_batch(kept, shared: bool = False) -> UpdateBatch:
    """This rank's rows; ``shared``: each prompt forwarded once for its group (post-train space's default)."""
    prompts, responses, advantages, kept = global_batch(kept=kept)
    rows = distributed.shard(list(range(len(prompts))))
    groups = [i // 2 for i in rows] if shared else None
    seqs = pack([prompts[i] for i in rows], [responses[i] for i in rows], pad_id=0, context_group=groups)
    adv = advantages[rows].unsqueeze(-1).expand_as(seqs.response_mask).clone()
    mask = seqs.response_mask * torch.tensor([float(kept[i]) for i in rows]).unsqueeze(-1)
    return UpdateBatch(seqs, adv, mask)


def count_reduce_scatters() -> dict:
    """Counts FSDP2's reduce-scatters (torch 2.13 sends them through ``dist.reduce_scatter_single``)."""
    count = {"n": 0}
    send = dist.reduce_scatter_single

    def counted(*args, **kwargs):
        count["n"] += 1
        return send(*args, **kwargs)

    dist.reduce_scatter_single = counted
    return count


def main(out: str, strategy: str = "replicate", compute: str = "none") -> None:
    distributed.init()
    distributed.GRAD_BUCKET_BYTES = 4096
    reduce_scatters = count_reduce_scatters()
    dtype = {"none": None, "bfloat16": torch.bfloat16}[compute]

    def autocast():
        return torch.autocast("cpu", dtype=dtype) if dtype else contextlib.nullcontext()

    torch.manual_seed(0)
    model = tiny_qwen3()

    def wrap(m):
        return distributed.STRATEGIES[strategy](m, dtype)

    # 26 tokens: rank 0 of two packs its rows into 3 micro-batches, rank 1 into 4 (rank 0 pads one)
    critic = Critic(model, CriticConfig(), OptimConfig(micro_batch_tokens=26), wrap, autocast)
    model = wrap(model)
    forward_dtypes = set()
    model.model.layers[0].mlp.down_proj.register_forward_hook(
        lambda module, inputs, output: forward_dtypes.add(str(module.weight.dtype))
    )
    # copies (an unsharded state_dict holds the live tensors); gathering is a collective: every rank
    start, critic_start = (
        {k: v.detach().clone() for k, v in fsdp.model_state(m).items()} for m in (model, critic.model)
    )
    results, sent = {}, {}
    for mode, kept, clip, shared in (
        ("token-mean", "spread", 1e9, False),
        ("seq-mean-token-sum-norm", "spread", 1e9, False),
        ("token-mean", "rank0", 0.05, False),  # clips: the global norm matters
        ("token-mean", "spread", 1e9, True),  # shared prompts
        ("token-mean", "rank0", 1e9, True),  # shared prompts; rank 1 trains nothing but joins every backward
    ):
        algo = AlgorithmConfig(loss_agg_mode=mode)
        # SGD: the step is proportional to the gradient (Adam's first step is ~sign(g) and would hide errors)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        name = f"{mode}/{kept}" + ("/shared" if shared else "")
        reduce_scatters["n"] = 0
        stats = policy_update(
            model,
            optimizer,
            local_batch(KEPT[kept], shared),
            main_phase(algo),
            algo,
            OptimConfig(micro_batch_tokens=40, grad_clip=clip),
            max_new_tokens=16,
            compute=autocast,
        )
        sent[name] = reduce_scatters["n"]
        results[name] = distributed.reduce_metrics({f"train/{k}": v for k, v in stats.items()})
    reduce_scatters["n"] = 0
    results["critic"] = critic_updates(critic, local_batch(KEPT["spread"]).seqs)
    sent["critic"] = reduce_scatters["n"]
    state = fsdp.model_state(model)  # whole tensors on rank 0 under fsdp2
    critic_state = fsdp.model_state(critic.model)
    if distributed.is_main():
        torch.save(
            {
                "state": state,
                "critic": critic_state,
                "stats": results,
                "start": {"state": start, "critic": critic_start},
                "reduce_scatters": sent,
                "units": {"policy": len(fsdp._units(model)), "critic": len(fsdp._units(critic.model))},
                "forward_dtypes": sorted(forward_dtypes),
                "param_dtypes": sorted({str(p.dtype) for p in model.parameters()}),
                "grads_left": [n for n, p in model.named_parameters() if p.grad is not None],
            },
            out,
        )
    distributed.shutdown()


def critic_updates(critic: Critic, seqs) -> dict[str, float]:
    """Two value-loss steps (the head starts at zero, so only the second moves the trunk)."""
    critic.optimizer = torch.optim.SGD(critic.model.parameters(), lr=0.1)
    returns = torch.sin(seqs.response_ids.float())  # any per-token target, the same on every rank
    for _ in range(2):
        stats = critic.update(seqs, returns, critic.values(seqs))
    return distributed.reduce_metrics(stats)


if __name__ == "__main__":
    main(*sys.argv[1:])
