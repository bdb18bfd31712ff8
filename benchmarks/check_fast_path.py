"""Does the reward's fast path (``prerl.scoring.rewards.plain_number``) ever disagree with math-verify?

For every problem of every math benchmark copy in a data folder (``--data-dir``) and of
the mini task's splits, candidate answers are judged twice, with the fast path and by math-verify
alone, and every pair where the two differ is printed. The candidates per problem: the gold itself,
the reference solution's boxed answer, another problem's gold and reference (the shuffled oracle's
answer), and near misses and rewritings of the gold when it is a plain number (±1, negated, as
``a/b`` and ``\\frac{a}{b}``, scaled, inverted, with a decimal point). Exit status 1 on any
disagreement.

    python benchmarks/check_fast_path.py [--data-dir DIR] [--limit N]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from prerl.scoring.rewards import _math_verify, judge, last_boxed, plain_number  # noqa: E402


def rewritings(gold: str) -> list[str]:
    """Near misses and equal rewritings of a plain-number gold (none for other golds)."""
    value = plain_number(gold)
    if value is None:
        return []
    p, q = value.numerator, value.denominator
    out = [
        str(p + q) + (f"/{q}" if q > 1 else ""),
        str(-p) + (f"/{q}" if q > 1 else ""),
        f"\\frac{{{p}}}{{{q}}}",
        f"{2 * p}/{2 * q}",
        f"\\dfrac{{{3 * p}}}{{{3 * q}}}",
        f" {gold} ",
        f"{p}.0" if q == 1 else f"{p / q:.6f}",
        str(p - 1),
        f"0{abs(p)}",
        f"-\\frac{{{abs(p)}}}{{{q}}}",
    ]
    if p:
        out.append(f"{q}/{abs(p)}")
    return out


def candidate_pairs(golds: list[str], references: list[str]) -> list[tuple[str, str]]:
    """(boxed answer, gold) pairs: own answers, a shuffled partner's, and rewritings of the gold."""
    pairs = []
    for i, (gold, ref) in enumerate(zip(golds, references)):
        j = (i + 1) % len(golds)  # a derangement: every problem gets another problem's answers
        answers = [gold, last_boxed(ref), golds[j], last_boxed(references[j])] + rewritings(gold)
        pairs += [(a, gold) for a in dict.fromkeys(answers) if a is not None]
    return pairs


def disagreements(pairs: list[tuple[str, str]]) -> tuple[list[tuple[str, str, float, float]], int, int]:
    """Pairs where the fast path and math-verify differ; how many pairs the fast path decided; and how
    many math-verify verdicts hit its time limit (on a loaded machine) and were taken again without one.
    Only fast-path pairs are re-taken: plain numbers, which parse in microseconds when the CPU is free."""
    out, fast, retaken = [], 0, 0
    for answer, gold in pairs:
        with_fast, plain = judge(answer, gold), judge(answer, gold, fast=False)
        decided = plain_number(answer) is not None and plain_number(gold) is not None
        fast += decided
        if with_fast != plain and decided:
            retaken += 1
            plain = _math_verify(answer, gold, None, None)  # no time limit
        if with_fast != plain:
            out.append((answer, gold, with_fast, plain))
    return out, fast, retaken


def benchmark_sets(data_dir: Path, limit: int | None) -> dict[str, tuple[list[str], list[str]]]:
    """(golds, references) of every math benchmark with a copy in ``data_dir``."""
    from prerl.data.eval_sets import BENCHMARKS, load_benchmark, references

    out = {}
    for name, spec in BENCHMARKS.items():
        path = data_dir / spec.local_file
        if spec.scorer == "math" and path.exists():
            ds = load_benchmark(name, str(path), limit)
            out[name] = (list(ds["answer"]), references(ds))
    return out


def mini_sets() -> dict[str, tuple[list[str], list[str]]]:
    from prerl.config.schema import DataConfig
    from prerl.data.splits import synthetic_splits
    from prerl.scoring import scorer

    ref = scorer("math").reference
    return {
        f"mini/{split}": (list(ds["answer"]), [ref(a) for a in ds["answer"]])
        for split, ds in synthetic_splits(DataConfig()).items()
    }


def default_data_dir() -> Path:
    found = [p / "shared" / "data" for p in ROOT.parents if (p / "shared" / "data").is_dir()]
    return found[0] if found else ROOT.parent / "shared" / "data"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--data-dir",
        type=Path,
        default=default_data_dir(),
        help="a folder of benchmark copies at their Benchmark.local_file paths "
        "(default: the nearest shared/data folder above the checkout)",
    )
    ap.add_argument("--limit", type=int, default=None, help="first N problems per benchmark")
    args = ap.parse_args()
    if not args.data_dir.is_dir():
        raise SystemExit(f"no data folder at {args.data_dir}; pass --data-dir")
    sets = benchmark_sets(args.data_dir, args.limit) | mini_sets()
    print(
        "| set | problems | pairs | decided by the fast path | math-verify timed out, re-taken | disagreements "
        "| seconds |\n|---|---|---|---|---|---|---|"
    )
    total = 0
    for name, (golds, refs) in sets.items():
        start = time.perf_counter()
        pairs = candidate_pairs(golds, refs)
        bad, fast, retaken = disagreements(pairs)
        print(
            f"| {name} | {len(golds)} | {len(pairs)} | {fast} | {retaken} | {len(bad)} | "
            f"{time.perf_counter() - start:.0f} |",
            flush=True,
        )
        for answer, gold, with_fast, plain in bad:
            print(f"    answer {answer!r} gold {gold!r}: fast path {with_fast}, math-verify {plain}")
        total += len(bad)
    print(f"\ndisagreements: {total}")
    sys.exit(1 if total else 0)


if __name__ == "__main__":
    main()
