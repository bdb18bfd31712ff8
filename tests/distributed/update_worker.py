"""One policy update on a fixed global batch; under ``torchrun`` each rank updates on its share.

Writes the updated weights and the reduced stats to ``argv[1]`` (rank 0), so a test can check that
N processes take the same step as one; ``argv[2]`` is the ``distributed.strategy`` (default replicate).
Not collected by pytest (no ``test_`` prefix).
"""

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/helpers.py
from helpers import tiny_qwen3

from prerl import distributed, fsdp
from prerl.config import AlgorithmConfig, CriticConfig, OptimConfig
from prerl.critic import Critic
from prerl.objectives import main_phase
from prerl.logprobs import pack
from prerl.update import UpdateBatch, policy_update


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


def main(out: str, strategy: str = "replicate") -> None:
    distributed.init()
    torch.manual_seed(0)
    model = tiny_qwen3()
    wrap = distributed.STRATEGIES[strategy]
    # 26 tokens: rank 0 of two packs its rows into 3 micro-batches, rank 1 into 4 (rank 0 pads one)
    critic = Critic(model, CriticConfig(), OptimConfig(micro_batch_tokens=26), wrap)
    model = wrap(model)
    # copies (an unsharded state_dict holds the live tensors); gathering is a collective: every rank
    start, critic_start = (
        {k: v.detach().clone() for k, v in fsdp.model_state(m).items()} for m in (model, critic.model)
    )
    results = {}
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
        stats = policy_update(
            model,
            optimizer,
            local_batch(KEPT[kept], shared),
            main_phase(algo),
            algo,
            OptimConfig(micro_batch_tokens=40, grad_clip=clip),
            max_new_tokens=16,
        )
        results[f"{mode}/{kept}" + ("/shared" if shared else "")] = distributed.reduce_metrics(
            {f"train/{k}": v for k, v in stats.items()}
        )
    results["critic"] = critic_updates(critic, local_batch(KEPT["spread"]).seqs)
    state = fsdp.model_state(model)  # whole tensors on rank 0 under fsdp2
    critic_state = fsdp.model_state(critic.model)
    if distributed.is_main():
        torch.save(
            {
                "state": state,
                "critic": critic_state,
                "stats": results,
                "start": {"state": start, "critic": critic_start},
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
