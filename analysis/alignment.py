"""Gradient alignment between pre-train and post-train space (docs/paper.md#gradient-alignment).

For every sampled response y to a prompt x it computes, over all parameters,

    g_pre  = ∇θ Σ_t log π(y_t | c, y_<t)     (c = the context token, <|im_start|>)
    g_post = ∇θ Σ_t log π(y_t | x, y_<t)

and reports ⟨g_pre, g_post⟩ and their cosine, and per token the gap
log π(y_t | x, y_<t) − log π(y_t | c, y_<t) against the token's position and the policy's entropy
there. Summaries follow the paper (mean / min / max inner product, fraction negative, mean cosine,
mean |gap|); plots go to a PNG; everything can be logged to MLflow.

    python -m analysis.alignment --model outputs/<run>/final_policy --set test --problems 40 --samples 10
    python -m analysis.alignment --model mini --mlflow      # the base model
    python -m analysis.alignment --model smollm2_135m --data word_problems --temperature 0.5   # the real model
"""

from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from prerl.config.schema import Space
from prerl.train.logprobs import contexts, pack, response_logprobs

from .common import Policy, Samples, data_config, load, open_run, sample, short_name

PAPER = {
    "inner_mean": 9.23,
    "inner_max": 46.18,
    "inner_min": 0.94,
    "negative_frac": 0.0,
    "cosine_mean": 0.44,
    "abs_gap_mean": 0.16,
}  # Qwen3-4B, AMC23, 400 rollouts (docs/paper.md#gradient-alignment)


@dataclass
class ResponseAlignment:
    inner: float  # ⟨g_pre, g_post⟩
    cosine: float
    norm_pre: float
    norm_post: float
    logp_pre: np.ndarray  # [T] log π(y_t | c, y_<t)
    logp_post: np.ndarray  # [T] log π(y_t | x, y_<t)
    entropy_post: np.ndarray  # [T] entropy of π(· | x, y_<t)


def _sequence_grad(model, ctx: list[int], response: list[int], pad_id: int, params) -> tuple:
    """∇θ Σ_t log π(y_t | ctx, y_<t) as one tensor per parameter (None where it does not reach), the
    per-token log-probs and entropies."""
    seqs = pack([ctx], [response], pad_id)
    logp, entropy = response_logprobs(model, seqs, entropy="detached")
    logp = logp[0, : len(response)]
    grads = torch.autograd.grad(logp.sum(), params, allow_unused=True)
    return grads, logp.detach().cpu(), entropy[0, : len(response)].detach().cpu()


def _dots(a: tuple, b: tuple) -> tuple[float, float, float]:
    """⟨a, b⟩, ⟨a, a⟩ and ⟨b, b⟩ summed over parameters in float64, one parameter at a time: a real
    model's gradient is hundreds of MB (SmolLM2's 134.5M parameters: 540 MB in fp32), so it is never
    concatenated, and each parameter is widened once for all three sums. A parameter the gradient does
    not reach (None) adds nothing."""
    ab = aa = bb = 0.0
    for x, y in zip(a, b):
        x64 = x.reshape(-1).double() if x is not None else None
        y64 = y.reshape(-1).double() if y is not None else None
        if x64 is not None:
            aa += float(x64 @ x64)
        if y64 is not None:
            bb += float(y64 @ y64)
        if x64 is not None and y64 is not None:
            ab += float(x64 @ y64)
    return ab, aa, bb


def response_alignment(
    model, ctx_pre: list[int], ctx_post: list[int], response: list[int], pad_id: int
) -> ResponseAlignment:
    """Alignment of one response between two contexts (pre-train space first). Only this response's two
    gradients are held at once, whatever the number of responses."""
    params = [p for p in model.parameters() if p.requires_grad]
    with torch.enable_grad():
        g_pre, lp_pre, _ = _sequence_grad(model, ctx_pre, response, pad_id, params)
        g_post, lp_post, ent_post = _sequence_grad(model, ctx_post, response, pad_id, params)
    inner, sq_pre, sq_post = _dots(g_pre, g_post)
    n_pre, n_post = math.sqrt(sq_pre), math.sqrt(sq_post)
    cosine = inner / max(n_pre * n_post, 1e-30)
    return ResponseAlignment(inner, cosine, n_pre, n_post, lp_pre.numpy(), lp_post.numpy(), ent_post.numpy())


def align(policy: Policy, samples: Samples, log_every: int = 50) -> list[ResponseAlignment]:
    """Alignment of every sampled response (the model's dropout, if any, is off)."""
    policy.model.eval()
    pad = policy.tokenizer.pad_token_id
    pre = contexts(Space.pre, samples.prompt_ids, samples.group, policy.context_id)
    post = contexts(Space.post, samples.prompt_ids, samples.group, policy.context_id)
    out = []
    for i, response in enumerate(samples.response_ids):
        out.append(response_alignment(policy.model, pre[i], post[i], response, pad))
        if log_every and (i + 1) % log_every == 0:
            print(f"  aligned {i + 1}/{len(samples.response_ids)} responses", flush=True)
    return out


def token_table(results: list[ResponseAlignment]) -> dict[str, np.ndarray]:
    """Per-token arrays over all responses: position, log-probs in both spaces, gap, entropy."""
    cat = np.concatenate
    return {
        "position": cat([np.arange(len(r.logp_pre)) for r in results]),
        "logp_pre": cat([r.logp_pre for r in results]),
        "logp_post": cat([r.logp_post for r in results]),
        "gap": cat([r.logp_post - r.logp_pre for r in results]),
        "entropy": cat([r.entropy_post for r in results]),
    }


def summarise(results: list[ResponseAlignment]) -> dict[str, float]:
    """The paper's statistics, plus how |gap| depends on position and entropy."""
    inner = np.array([r.inner for r in results])
    cos = np.array([r.cosine for r in results])
    tok = token_table(results)
    gap = np.abs(tok["gap"])
    early = tok["position"] < 8
    high_ent = tok["entropy"] > np.median(tok["entropy"])
    return {
        "responses": float(len(results)),
        "tokens": float(len(gap)),
        "inner_mean": float(inner.mean()),
        "inner_min": float(inner.min()),
        "inner_max": float(inner.max()),
        "negative_frac": float((inner < 0).mean()),
        "cosine_mean": float(cos.mean()),
        "cosine_min": float(cos.min()),
        "abs_gap_mean": float(gap.mean()),
        "abs_gap_first8": float(gap[early].mean()) if early.any() else float("nan"),
        "abs_gap_after8": float(gap[~early].mean()) if (~early).any() else float("nan"),
        "abs_gap_high_entropy": float(gap[high_ent].mean()) if high_ent.any() else float("nan"),
        "abs_gap_low_entropy": float(gap[~high_ent].mean()) if (~high_ent).any() else float("nan"),
        "corr_abs_gap_entropy": _corr(gap, tok["entropy"]),
        "corr_abs_gap_position": _corr(gap, tok["position"].astype(float)),
    }


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a, b)[0, 1]) if len(a) > 1 and a.std() > 0 and b.std() > 0 else float("nan")


def _binned(x: np.ndarray, y: np.ndarray, edges: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    idx = np.digitize(x, edges[1:-1])
    keep = [k for k in range(len(edges) - 1) if (idx == k).any()]
    centres = np.array([(edges[k] + edges[k + 1]) / 2 for k in keep])
    return centres, np.array([y[idx == k].mean() for k in keep])


def plot(results: list[ResponseAlignment], path: str | Path, title: str = "") -> Path:
    """Six panels: inner products, cosines, log-prob scatter, gap distribution, |gap| vs position and entropy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tok = token_table(results)
    gap = np.abs(tok["gap"])
    fig, ax = plt.subplots(2, 3, figsize=(15, 8.5))
    ax[0, 0].hist([r.inner for r in results], bins=30, color="tab:blue")
    ax[0, 0].axvline(0, color="k", lw=0.8)
    ax[0, 0].set(title="⟨∇log P(y), ∇log P(y|x)⟩ per response", xlabel="inner product", ylabel="responses")
    ax[0, 1].hist([r.cosine for r in results], bins=30, range=(-1, 1), color="tab:green")
    ax[0, 1].set(title="cosine per response", xlabel="cosine")
    sc = ax[0, 2].scatter(tok["logp_post"], tok["logp_pre"], c=tok["entropy"], s=3, cmap="viridis", alpha=0.6)
    low = float(min(tok["logp_post"].min(), tok["logp_pre"].min()))
    ax[0, 2].plot([low, 0], [low, 0], "k--", lw=0.8)
    ax[0, 2].set(title="per token log-prob", xlabel="log P(y_t | x, y_<t)", ylabel="log P(y_t | y_<t)")
    fig.colorbar(sc, ax=ax[0, 2], label="entropy")
    ax[1, 0].hist(tok["gap"], bins=60, color="tab:purple")
    ax[1, 0].set(title="gap log P(y_t|x,·) − log P(y_t|·)", xlabel="gap", ylabel="tokens")
    ax[1, 0].set_yscale("log")
    pos_edges = np.unique(np.linspace(0, tok["position"].max() + 1, 25).astype(int))
    ax[1, 1].plot(*_binned(tok["position"], gap, pos_edges), marker="o")
    ax[1, 1].set(title="mean |gap| vs position", xlabel="token position", ylabel="mean |gap|")
    ent_edges = np.quantile(tok["entropy"], np.linspace(0, 1, 11))
    ent_edges[-1] += 1e-9
    ax[1, 2].plot(*_binned(tok["entropy"], gap, np.unique(ent_edges)), marker="o", color="tab:red")
    ax[1, 2].set(title="mean |gap| vs entropy (deciles)", xlabel="entropy of π(·|x,y_<t)", ylabel="mean |gap|")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def report(stats: dict[str, float]) -> str:
    keys = ["inner_mean", "inner_min", "inner_max", "negative_frac", "cosine_mean", "abs_gap_mean"]
    lines = ["| statistic | this run | paper (Qwen3-4B, AMC23) |", "|---|---|---|"]
    lines += [f"| {k} | {stats[k]:.4g} | {PAPER[k]:g} |" for k in keys]
    extra = [k for k in stats if k not in keys]
    lines += [f"| {k} | {stats[k]:.4g} | |" for k in extra]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, float]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--model",
        required=True,
        help="mini, micro, a model of conf/model (smollm2_135m), or a checkpoint folder (outputs/<run>/final_policy)",
    )
    p.add_argument("--data", default=None, help="the task of conf/data whose split --set is (default: the mini task)")
    p.add_argument("--set", default="test", help="a split of the task (test, ood, train) or a benchmark (amc23)")
    p.add_argument("--temperature", type=float, default=1.0, help="sampling temperature of the responses")
    p.add_argument("--data-dir", help="a folder of benchmark copies at their Benchmark.local_file paths (else the Hub)")
    p.add_argument("--problems", type=int, default=40)
    p.add_argument("--samples", type=int, default=10, help="responses per problem")
    p.add_argument("--max-new-tokens", type=int, default=96)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cache-dir", default=".cache/prerl")
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", default=None, help="output folder (default outputs/analysis/alignment/<model>)")
    p.add_argument("--mlflow", action="store_true", help="log statistics and plots to MLflow (--experiment)")
    p.add_argument(
        "--experiment",
        default="prerl-analysis",
        help="MLflow experiment of --mlflow (the mini study's: its runs' experiment)",
    )
    args = p.parse_args(argv)

    name = short_name(args.model)
    out = Path(args.out or f"outputs/analysis/alignment/{name}_{args.set}")
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    policy = load(args.model, args.cache_dir, args.device)
    samples = sample(
        policy,
        args.set,
        args.problems,
        args.samples,
        args.max_new_tokens,
        args.temperature,
        seed=args.seed,
        data_dir=args.data_dir,
        data=data_config(args.data),
    )
    print(f"{args.model}: {len(samples.texts)} responses on {args.set}, accuracy {np.mean(samples.correct):.3f}")
    results = align(policy, samples)
    stats = summarise(results) | {"accuracy": float(np.mean(samples.correct))}
    plot(results, out / "alignment.png", f"{args.model} on {args.set}: {len(results)} responses")
    per_response = [
        {k: v for k, v in asdict(r).items() if not isinstance(v, np.ndarray)}
        | {"correct": samples.correct[i], "length": len(r.logp_pre)}
        for i, r in enumerate(results)
    ]
    (out / "alignment.json").write_text(
        json.dumps(
            {
                "model": args.model,
                "set": args.set,
                "args": vars(args),
                "seconds": time.perf_counter() - start,
                "summary": stats,
                "paper": PAPER,
                "responses": per_response,
            },
            indent=1,
        )
    )
    np.savez_compressed(out / "tokens.npz", **token_table(results))
    text = report(stats)
    (out / "alignment.md").write_text(text + "\n")
    print(text)
    print(f"wrote {out}/alignment.png, alignment.json, tokens.npz")
    if args.mlflow:
        tracker = open_run(args.experiment, f"alignment {name}", vars(args))
        tracker.log({f"alignment/{k}": v for k, v in stats.items() if np.isfinite(v)}, 0)
        tracker.client.log_artifacts(tracker.run_id, str(out), "alignment")
        tracker.finish()
        print(f"logged to MLflow run {tracker.run_id}")
    return stats


if __name__ == "__main__":
    main()
