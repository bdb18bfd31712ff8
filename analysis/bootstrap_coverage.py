"""How often the tables' 95% intervals cover the truth, measured on simulated experiments.

    python -m analysis.bootstrap_coverage                  # the regimes of docs/sweeps.md, ~1 min
    python -m analysis.bootstrap_coverage --seeds 3 --problems 128 --replicates 1000

A simulated experiment has two methods evaluated on the same problems, each over its own seeds, with
K samples per problem. Problem p is solved with probability ``q_p + d_m + u_mp + b_ms``: a difficulty
shared by both methods (``q_p`` ~ U(0.2, 0.8), what pairing by problem cancels), the method's effect
``d_m``, a method × problem interaction ``u_mp`` ~ U(±interaction) and a seed effect ``b_ms`` ~
U(±seed_effect). Both effects have mean zero, so the true difference of the methods' expected Avg@K
is exactly ``d_B − d_A``, and each method's true mean is ``0.5 + d_m``. Coverage is the share of
replicates whose interval holds the true value.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass

import numpy as np

from prerl.eval.stats import compare


@dataclass(frozen=True)
class World:
    seeds: int = 10
    problems: int = 100
    K: int = 8
    difference: float = 0.05  # d_B − d_A
    seed_effect: float = 0.1  # half-width of the uniform seed effect
    interaction: float = 0.05  # half-width of the uniform method × problem effect

    def sample(self, rng: np.random.Generator) -> dict[str, dict[str, np.ndarray]]:
        """One experiment: ``{method: {"set": [seeds, problems] Avg@K per problem}}``."""
        q = rng.uniform(0.2, 0.8, self.problems)
        rows = {}
        for method, effect in (("A", 0.0), ("B", self.difference)):
            u = rng.uniform(-self.interaction, self.interaction, self.problems)
            b = rng.uniform(-self.seed_effect, self.seed_effect, (self.seeds, 1))
            p = np.clip(q + effect + u + b, 0.0, 1.0)  # the default ranges never clip
            rows[method] = {"set": rng.binomial(self.K, p) / self.K}
        return rows


@dataclass(frozen=True)
class Coverage:
    delta: float  # share of replicates whose Δ interval holds the true difference
    mean: float  # share whose interval for method A holds A's true mean
    delta_width: float  # mean width of the Δ interval


def coverage(
    world: World, replicates: int = 1000, n_boot: int = 1000, seed: int = 0, paired: bool = True, level: float = 0.95
) -> Coverage:
    rng = np.random.default_rng(seed)
    hit_delta = hit_mean = width = 0.0
    for r in range(replicates):
        summary = compare(
            world.sample(rng),
            baseline="A",
            average=None,
            level=level,
            n_boot=n_boot,
            seed=seed * 100_003 + r,
            paired=paired,
        )
        delta, mean = summary["B"].delta["set"], summary["A"].estimate["set"]
        hit_delta += delta.lo <= world.difference <= delta.hi
        hit_mean += mean.lo <= 0.5 <= mean.hi
        width += delta.hi - delta.lo
    return Coverage(hit_delta / replicates, hit_mean / replicates, width / replicates)


REGIMES = {  # name -> world: the table of docs/sweeps.md#reading-a-table
    "3 seeds, seed effect dominant": World(seeds=3),
    "5 seeds, seed effect dominant": World(seeds=5),
    "10 seeds, seed effect dominant": World(seeds=10),
    "20 seeds, seed effect dominant": World(seeds=20),
    "5 seeds, small seed effect": World(seeds=5, seed_effect=0.02),
}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--seeds", type=int, help="one world with this many seeds per method (default: the regimes of docs/sweeps.md)"
    )
    p.add_argument("--problems", type=int, default=100)
    p.add_argument("--seed-effect", type=float, default=0.1)
    p.add_argument("--replicates", type=int, default=1000)
    p.add_argument("--n-boot", type=int, default=1000)
    args = p.parse_args(argv)
    worlds = (
        {f"{args.seeds} seeds": World(args.seeds, args.problems, seed_effect=args.seed_effect)}
        if args.seeds
        else REGIMES
    )
    print(
        f"| world ({args.replicates} replicates, {args.n_boot} bootstrap draws) | Δ coverage | mean coverage | "
        "Δ width (paired) | Δ width (unpaired) | seconds |\n|---|---|---|---|---|---|"
    )
    for name, world in worlds.items():
        start = time.perf_counter()
        paired = coverage(world, args.replicates, args.n_boot)
        unpaired = coverage(world, args.replicates, args.n_boot, paired=False)
        print(
            f"| {name}, {world.problems} problems | {100 * paired.delta:.1f}% | {100 * paired.mean:.1f}% | "
            f"{100 * paired.delta_width:.2f} | {100 * unpaired.delta_width:.2f} | "
            f"{time.perf_counter() - start:.1f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
