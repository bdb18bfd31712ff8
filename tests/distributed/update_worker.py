"""One policy update on a fixed global batch; under ``torchrun`` each rank updates on its share.

Writes the updated weights and the reduced stats to ``argv[1]`` (rank 0), so a test can check that
N processes take the same step as one. Not collected by pytest (no ``test_`` prefix).
"""

import sys

import torch
from transformers import Qwen3Config, Qwen3ForCausalLM

from prerl import distributed
from prerl.config import AlgorithmConfig, OptimConfig
from prerl.objectives import main_phase
from prerl.scoring import pack
from prerl.update import UpdateBatch, policy_update


def global_batch(n: int = 10):
    g = torch.Generator().manual_seed(0)
    prompts = [torch.randint(1, 40, (int(torch.randint(3, 8, (1,), generator=g)),), generator=g).tolist()
               for _ in range(n)]
    responses = [torch.randint(1, 40, (int(torch.randint(2, 12, (1,), generator=g)),), generator=g).tolist()
                 for _ in range(n)]
    advantages = torch.randn(n, generator=g)
    kept = [i % 3 != 0 for i in range(n)]  # as NSR: some samples are not trained on
    return prompts, responses, advantages, kept


def main(out: str) -> None:
    distributed.init()
    torch.manual_seed(0)
    model = Qwen3ForCausalLM(Qwen3Config(vocab_size=48, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                         num_attention_heads=2, num_key_value_heads=1, head_dim=16))
    prompts, responses, advantages, kept = global_batch()
    rows = distributed.shard(list(range(len(prompts))))
    seqs = pack([prompts[i] for i in rows], [responses[i] for i in rows], pad_id=0)
    adv = advantages[rows].unsqueeze(-1).expand_as(seqs.response_mask).clone()
    mask = seqs.response_mask * torch.tensor([float(kept[i]) for i in rows]).unsqueeze(-1)
    results = {}
    for mode in ("token-mean", "seq-mean-token-sum-norm"):
        algo = AlgorithmConfig(loss_agg_mode=mode)
        # SGD: the step is proportional to the gradient (Adam's first step is ~sign(g) and would hide errors)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        stats = policy_update(model, optimizer, UpdateBatch(seqs, adv, mask), main_phase(algo), algo,
                              OptimConfig(micro_batch_tokens=40, grad_clip=1e9), max_new_tokens=16)
        results[mode] = distributed.reduce_metrics({f"train/{k}": v for k, v in stats.items()})
    if distributed.is_main():
        torch.save({"state": model.state_dict(), "stats": results}, out)


if __name__ == "__main__":
    main(sys.argv[1])
