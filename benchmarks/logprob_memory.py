"""Peak memory of the update's log-probs (and entropy) on one micro-batch of logits: the chunked
``next_token_logprobs`` against the plain full-softmax formula it replaced (docs/performance.md).

Each variant runs in a fresh process (``--variant`` runs one): [1, N, V] fp32 logits that require
grad, log-probs at temperature 0.7, then backward. Reported: what the forward keeps for backward
(RSS after forward) and the peak RSS of forward and backward (``ru_maxrss``), both above the RSS with
the logits allocated. On CPU large tensors are their own mmap, so RSS follows them.

    python benchmarks/logprob_memory.py [--positions 2048] [--vocab 151936]
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TEMPERATURE = 0.7


def rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def plain(logits, targets, entropy: str):
    """The formula before chunking: fp32 logits / T, logsumexp and softmax over the whole tensor."""
    import torch

    s = logits.float() / TEMPERATURE
    lse = torch.logsumexp(s, dim=-1)
    logp = torch.gather(s, -1, targets.unsqueeze(-1)).squeeze(-1) - lse
    if entropy == "none":
        return logp, None
    with torch.set_grad_enabled(entropy == "grad"):
        return logp, lse - (torch.softmax(s, dim=-1) * s).sum(-1)


def measure(variant: str, entropy: str, positions: int, vocab: int) -> None:
    import torch

    sys.path.insert(0, str(ROOT))
    from prerl.train.logprobs import next_token_logprobs

    torch.manual_seed(0)
    logits = torch.randn(1, positions, vocab).requires_grad_()
    targets = torch.randint(vocab, (1, positions))
    base = rss_mib()
    run = plain if variant == "plain" else lambda z, y, e: next_token_logprobs(z, y, TEMPERATURE, e)
    logp, ent = run(logits, targets, entropy)
    kept = rss_mib() - base
    (logp.sum() + (ent.sum() if entropy == "grad" else 0.0)).backward()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - base
    size = logits.numel() * 4 / 2**20
    print(
        f"{variant:8} entropy={entropy:8} logits {size:7.0f} MiB  kept for backward {kept:7.0f} MiB  "
        f"peak {peak:7.0f} MiB ({peak / size:.2f}× the logits)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--positions", type=int, default=2048)
    parser.add_argument("--vocab", type=int, default=151_936)
    parser.add_argument("--variant", choices=["plain", "chunked"])
    parser.add_argument("--entropy", choices=["none", "detached", "grad"], default="detached")
    args = parser.parse_args()
    if args.variant:
        measure(args.variant, args.entropy, args.positions, args.vocab)
        return
    for variant in ("plain", "chunked"):
        for entropy in ("detached", "grad"):
            common = ["--positions", str(args.positions), "--vocab", str(args.vocab), "--entropy", entropy]
            subprocess.run([sys.executable, __file__, "--variant", variant, *common], check=True)


if __name__ == "__main__":
    main()
