"""Reasoning behaviours of models against their base model, as the paper reports them
(docs/paper.md#reasoning-behaviours).

For each model (and the base) the mean count per response of transition thoughts, reflection
thoughts and the four behaviours, the share of responses showing each, and the ratio model / base.
Responses are sampled on an eval set, or read from saved completions (JSONL with a ``response``
field, or a training run's ``samples/*.json`` MLflow table). The four behaviours come from the rules
in ``prerl.eval.behaviours`` by default, or from an LLM judge (``--judge openai|transformers``).

    python -m analysis.behaviour_table --base mini --model outputs/<run>/final_policy --set test
    python -m analysis.behaviour_table --base-responses base.jsonl --responses after.jsonl
    python -m analysis.behaviour_table ... --judge openai --judge-url http://localhost:8000/v1 --judge-model gpt-4o
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from prerl.eval.behaviours import BEHAVIOURS, DEFAULT_LEXICON, Lexicon, behaviour_metrics

from . import judge as judge_lib
from .common import load, open_run, read_responses, sample, short_name


def summarise(texts: list[str], lexicon: Lexicon = DEFAULT_LEXICON, complete=None) -> dict[str, float]:
    """Mean count per response (``<category>``) and share of responses (``<category>_frac``) of every
    category; with a judge ``complete`` function the four behaviours are the judge's counts."""
    stats = behaviour_metrics(texts, lexicon, prefix="")
    if complete is not None:
        counts = judge_lib.judge_counts(texts, complete)
        for b in BEHAVIOURS:
            stats[b] = sum(c[b] for c in counts) / len(counts)
            stats[f"{b}_frac"] = sum(c[b] > 0 for c in counts) / len(counts)
    stats["responses"] = float(len(texts))
    return stats


def ratio(value: float, base: float) -> float:
    """value / base; inf when only the base is 0, nan when both are."""
    if base == 0:
        return math.nan if value == 0 else math.inf
    return value / base


def compare(model: dict[str, float], base: dict[str, float]) -> dict[str, float]:
    return {k: ratio(v, base[k]) for k, v in model.items() if k != "responses" and not k.endswith("_frac")}


def table(rows: dict[str, dict[str, float]], base: str) -> str:
    """Markdown: one row per category, a column per model (mean per response, ×ratio vs base)."""
    names = list(rows)
    categories = [k for k in rows[base] if k != "responses" and not k.endswith("_frac")]
    lines = ["| per response | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for c in categories:
        cells = []
        for n in names:
            cell = f"{rows[n][c]:.3f}"
            if n != base:
                cell += f" (×{ratio(rows[n][c], rows[base][c]):.2f})"
            cells.append(cell)
        lines.append(f"| {c} | " + " | ".join(cells) + " |")
    lines.append("| responses | " + " | ".join(str(int(rows[n]["responses"])) for n in names) + " |")
    return "\n".join(lines)


def make_judge(args):
    if args.judge == "rules":
        return None
    if args.judge == "openai":
        if not (args.judge_url and args.judge_model):
            raise SystemExit("--judge openai needs --judge-url and --judge-model")
        return judge_lib.openai_complete(args.judge_url, args.judge_model)
    if not args.judge_model:
        raise SystemExit("--judge transformers needs --judge-model (a local folder or Hub id)")
    return judge_lib.transformers_complete(args.judge_model)


def main(argv: list[str] | None = None) -> dict[str, dict[str, float]]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--base", help="base model: mini, micro, or a checkpoint folder")
    p.add_argument("--model", action="append", default=[], help="model(s) to compare with the base (repeatable)")
    p.add_argument("--base-responses", help="saved base completions instead of --base")
    p.add_argument("--responses", action="append", default=[], help="saved completions (repeatable)")
    p.add_argument("--set", default="test", help="mini split (test, ood, train) or benchmark (e.g. amc23)")
    p.add_argument("--data-dir", help="a folder of benchmark copies at their Benchmark.local_file paths (else the Hub)")
    p.add_argument("--problems", type=int, default=32)
    p.add_argument("--samples", type=int, default=8, help="responses per problem")
    p.add_argument("--max-new-tokens", type=int, default=96)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--lexicon", help="YAML/JSON of category -> regex list, replacing those defaults")
    p.add_argument("--judge", choices=["rules", "openai", "transformers"], default="rules")
    p.add_argument("--judge-url", help="OpenAI-compatible API root, e.g. http://localhost:8000/v1")
    p.add_argument("--judge-model")
    p.add_argument("--cache-dir", default=".cache/prerl")
    p.add_argument("--out", default="outputs/analysis/behaviour_table", help="folder for completions and results")
    p.add_argument("--mlflow", action="store_true", help="also log to MLflow experiment prerl-analysis")
    args = p.parse_args(argv)
    if bool(args.base) == bool(args.base_responses):
        p.error("give exactly one of --base and --base-responses")

    lexicon = Lexicon.from_file(args.lexicon) if args.lexicon else DEFAULT_LEXICON
    complete = make_judge(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    def texts_of(spec: str) -> list[str]:
        samples = sample(
            load(spec, args.cache_dir),
            args.set,
            args.problems,
            args.samples,
            args.max_new_tokens,
            seed=args.seed,
            data_dir=args.data_dir,
        )
        samples.to_jsonl(out / f"{short_name(spec)}_{args.set}.jsonl")
        return samples.texts

    base_name = args.base or args.base_responses
    sources = {base_name: (lambda: texts_of(args.base)) if args.base else (lambda: read_responses(args.base_responses))}
    sources |= {m: (lambda m=m: texts_of(m)) for m in args.model}
    sources |= {r: (lambda r=r: read_responses(r)) for r in args.responses}
    rows = {name: summarise(get(), lexicon, complete) for name, get in sources.items()}
    result = {
        "rows": rows,
        "ratios": {n: compare(rows[n], rows[base_name]) for n in rows if n != base_name},
        "base": base_name,
        "judge": args.judge,
        "set": args.set,
    }
    (out / "behaviours.json").write_text(json.dumps(result, indent=2))
    report = table(rows, base_name)
    (out / "behaviours.md").write_text(report + "\n")
    print(report)
    if args.mlflow:
        tracker = open_run("prerl-analysis", "behaviours", vars(args))
        for i, (name, row) in enumerate(rows.items()):
            tracker.log(
                {f"behaviour/{k}": v for k, v in row.items()}
                | {f"behaviour_ratio/{k}": v for k, v in result["ratios"].get(name, {}).items() if math.isfinite(v)},
                i,
            )
        tracker.client.log_artifacts(tracker.run_id, str(out), "behaviours")
        tracker.finish()
    return rows


if __name__ == "__main__":
    main()
