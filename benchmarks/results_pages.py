"""The docs pages' benchmark tables, rendered from the committed results history (``results/benchmarks/``).

    python benchmarks/results_pages.py --write    # refresh every block from the newest result of its benchmark
    python benchmarks/results_pages.py --check    # exit 1 if a block differs from what the results give

A block is the text between ``<!-- results: NAME -->`` and ``<!-- results: NAME end -->`` in a page; it
shows the newest run of benchmark NAME (its tables, as the benchmark printed them) under a line saying
where and when it ran. A benchmark with no run in the history says so instead of showing old numbers.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, ROOT, newest_result


def stage_tables(result: dict) -> str:
    from bench import floor_table, growth_table, table

    workloads, growth = result["workloads"], result.get("growth")
    text = f"CPU seconds per stage (median per step):\n\n{table(workloads)}\n\nAgainst the floor:\n\n{floor_table(workloads)}"
    return text + (f"\n\nCost growth (GRPO):\n\n{growth_table(growth)}" if growth else "")


def trl_tables(result: dict) -> str:
    from bench_trl import summary

    return summary(result["steps"], result["median"], result["prerl_over_trl"], result["nsr_over_grpo"])


def rollout_table(result: dict) -> str:
    from bench_rollout import engine_table

    return engine_table(result["median"], result["prerl_over_vllm_tokens_per_s"])


def growth_rows(result: dict) -> str:
    from bench_growth import table

    return table(result["rows"])


# benchmark name -> how its result is shown, and the command that makes one
RENDERERS: dict[str, tuple[Callable[[dict], str], str]] = {
    "bench": (stage_tables, "make bench"),
    "bench_trl": (trl_tables, "make bench-trl"),
    "bench-smollm2_dsrl": (stage_tables, "make bench-smollm2"),
    "bench-smollm2_135m": (stage_tables, "make bench MODEL=smollm2_135m"),
    "bench-smollm2_135m-bf16": (stage_tables, "make bench MODEL=smollm2_135m ARGS=--bf16"),
    "bench_trl_smollm2_135m": (trl_tables, "make bench-trl MODEL=smollm2_135m"),
    "bench_trl_smollm2_135m_bf16": (trl_tables, "make bench-trl MODEL=smollm2_135m ARGS=--bf16"),
    "bench_rollout_smollm2_135m": (rollout_table, "make bench-rollout"),
    "bench_rollout_smollm2_135m_bf16": (rollout_table, "make bench-rollout ARGS=--bf16"),
    "bench_growth": (growth_rows, "make bench-growth"),
}
PAGES = [ROOT / "docs" / "performance.md", ROOT / "docs" / "smollm2-task.md"]
BLOCK = re.compile(r"(<!-- results: (?P<name>[\w.-]+) -->\n)(?P<body>.*?)(<!-- results: (?P=name) end -->)", re.S)


def provenance(name: str, result: dict, path: Path) -> str:
    env = result["environment"]
    load = f"load average {env['load_average_1_5_15min'][0]} at start, {env.get('load_average_end', ['?'])[0]} at end"
    threads = result.get("threads") or "default"
    units = {True: ", bf16 matrix units", False: ", no bf16 matrix units"}.get(env.get("bf16_matrix_units"), "")
    return (
        f"*`{' '.join(result.get('command', ['?']))}` at commit {env['git_head']}{' (uncommitted changes)' * env['git_dirty']}, "
        f"{path.stem.split('_')[0]}: {env['cpu_model']}, {env['cpu_count']} cores{units}, {threads} torch thread(s), {load}; "
        f"`results/benchmarks/{name}/{path.name}`.*"
    )


def render(name: str) -> str:
    if name not in RENDERERS:
        raise SystemExit(f"results block {name!r}: no renderer (known: {', '.join(RENDERERS)})")
    show, command = RENDERERS[name]
    path = newest_result(name)
    if path is None:
        return f"*No run of `{command}` is in `results/benchmarks/{name}/` yet.*\n"
    result = json.loads(path.read_text())
    return f"{provenance(name, result, path)}\n\n{show(result)}\n"


def refreshed(text: str) -> str:
    return BLOCK.sub(lambda m: m.group(1) + render(m.group("name")) + m.group(4), text)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--write", action="store_true", help="rewrite the blocks in place")
    ap.add_argument("--check", action="store_true", help="exit 1 if a block is stale")
    args = ap.parse_args()
    stale = []
    for page in PAGES:
        text = page.read_text()
        new = refreshed(text)
        if new != text:
            stale.append(str(page.relative_to(ROOT)))
            if args.write:
                page.write_text(new)
    verb = "rewrote" if args.write else "stale"
    print(
        f"{verb}: {', '.join(stale)}" if stale else f"every results block is up to date ({RESULTS.relative_to(ROOT)})"
    )
    if args.check and stale and not args.write:
        sys.exit(1)


if __name__ == "__main__":
    main()
