"""What an objective does to the mini model, update by update (the NSR-PreRL investigation).

It trains one objective from the base model with the trainer's own step and, after every update, records

- the relative weight change ‖Δθ‖/‖θ‖ and the drift ‖θ − θ₀‖/‖θ₀‖, beside ``lr / RMS(θ₀)``: Adam moves
  each weight by at most about ``lr`` per update, so that is the largest relative change the learning
  rate allows, whatever the loss scale (``loss_coef`` cancels under Adam);
- the gradient norm before clipping, against ``optim.grad_clip`` (does the clip act?);
- KL(π₀ ‖ π_θ) per response in post-train space (on base samples to fixed prompts) and in pre-train
  space (on base samples of P(y | c), drawn with the context token alone as the prompt);
- per token class of the post-space probe responses, the mean change of log π(y_t | x, y<t) and of
  log π(y_t | c, y<t) since the base model, and the share of tokens whose probability at least halved
  (classes: ``operand`` digits of a column sentence, i.e.
  copied from the prompt, or the incoming carry; ``computed`` digits; ``reflection`` words — wait,
  check, ok; ``eos``; ``format``: every other token). On the real model's word problems
  (``data=word_problems``) the classes are ``copied`` numbers (their value is in the prompt),
  ``computed`` numbers (it is not), ``word`` (every other token) and ``eos`` (``word_problem_classes``);

and every ``--sample-every`` updates, fresh samples: accuracy, length, reflections per response, and
which style the response opens with (``guess``: "So the answer is", ``checked``: "Check", else
``columns``), with what was left out of the response when it got shorter.

    python -m analysis.nsr_diagnostics --steps 30 --out diag.json objective=nsr_prerl model=mini_styles
    python -m analysis.nsr_diagnostics --study --out docs/nsr-prerl-investigation/diagnostics     # every STUDY variant
    python -m analysis.nsr_diagnostics --summarise docs/nsr-prerl-investigation/diagnostics       # their table
    python -m analysis.nsr_diagnostics --base-only --out base.json experiment=smollm2_dsrl         # the real model

Everything after the options is a Hydra override of ``train.py``'s config (the objective trains for
all ``--steps`` updates).
"""

from __future__ import annotations

import argparse
import json
import re
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from prerl.config.schema import register_configs
from prerl.train.logprobs import pack, score_logprobs

CONF = str(Path(__file__).resolve().parents[1] / "conf")
# Adam moves a weight by about lr per update, so lr / RMS(θ) is the relative step. The paper's is
# 1e-6 / 0.02 = 5e-5 on Qwen3-4B, taking RMS ≈ 0.02 (Qwen3's initializer_range; the trained weights'
# RMS is not known here); the mini model's RMS is 0.057, so lr 3e-6 gives it the paper's relative step.
PAPER_RELATIVE_LR = ["optim.lr=3e-6"]
# The investigation's variants (docs/nsr-prerl-investigation.md): name -> (overrides, tasks).
STUDY = {
    "nsr_prerl": (["objective=nsr_prerl"], ("mini", "mini_styles")),
    "nsr_prerl_paper_lr": (["objective=nsr_prerl", *PAPER_RELATIVE_LR], ("mini", "mini_styles")),
    "nsr_prerl_loss_coef_1": (["objective=nsr_prerl", "objective.loss_coef=1.0"], ("mini",)),
    "nsr_prerl_unit": (["objective=nsr_prerl", "objective.advantage=unit"], ("mini",)),
    "nsr_rl": (["objective=nsr_rl"], ("mini", "mini_styles")),
    "psr_prerl": (["objective=psr_prerl"], ("mini", "mini_styles")),
}
CLASSES = ("operand", "computed", "reflection", "eos", "format")
REFLECTION = re.compile(r"^(wait|check|ok)$", re.IGNORECASE)
# Words after which digits are results, not operands; "check" starts an expression again.
RESULT_WORDS = {"write", "carry", "down", "answer", "is", "boxed"}


def token_classes(response_ids: list[int], tokenizer) -> list[str]:
    """A class per token, by a left-to-right reading of column sentences ("7+5+1=13, write 3 carry 1.")."""
    classes, in_expression = [], True
    for tid in response_ids:
        text = tokenizer.decode([tid]).strip()
        word = text.strip(".,{}\\").lower()
        if tid == tokenizer.eos_token_id:
            classes.append("eos")
        elif text.isdigit():
            classes.append("operand" if in_expression else "computed")
        elif REFLECTION.match(word):
            classes.append("reflection")
            in_expression = word == "check" or in_expression
        else:
            classes.append("format")
        if "=" in text or word in RESULT_WORDS or "boxed" in text:
            in_expression = False
        if text.endswith(".") or word == "check":
            in_expression = True
    return classes


WORD_CLASSES = ("copied", "computed", "word", "eos")
NUMBER = re.compile(r"[0-9]+(?:\.[0-9]+)?")


def number_value(text: str) -> str:
    """A number's value as text, so that "07" and "7", "3.50" and "3.5" are one number."""
    return str(float(text)).removesuffix(".0") if "." in text else str(int(text))


def word_problem_classes(response_ids: list[int], prompt_ids: list[int], tokenizer) -> list[str]:
    """A class per token of a word-problem response: ``copied`` (part of a number whose value is one of
    the prompt's numbers), ``computed`` (part of any other number), ``eos``, or ``word``. A token's
    characters are where the decoded response grows when the token is added, so a number split over
    several tokens (SmolLM2 writes one digit per token) gives each of them its class."""
    given = {number_value(m) for m in NUMBER.findall(tokenizer.decode(prompt_ids))}
    text = tokenizer.decode(response_ids)
    numbers = [(m.start(), m.end(), number_value(m.group())) for m in NUMBER.finditer(text)]
    classes, start = [], 0
    for i, tid in enumerate(response_ids):
        end = max(start, len(tokenizer.decode(response_ids[: i + 1])))
        value = next((v for a, b, v in numbers if a < end and b > start), None)
        if tid == tokenizer.eos_token_id:
            classes.append("eos")
        elif value is not None and any(c.isdigit() for c in text[start:end]):
            classes.append("copied" if value in given else "computed")
        else:
            classes.append("word")
        start = end
    return classes


# Per task (data.name): the token classes and the function that assigns them (response, prompt, tokenizer).
CLASSIFIERS = {
    "mini": (CLASSES, lambda response, prompt, tokenizer: token_classes(response, tokenizer)),
    "word_problems": (WORD_CLASSES, word_problem_classes),
}


def gradient_weight(table: dict[str, dict[str, float]], space: str) -> dict[str, float]:
    """Per class, its share of the gradient weight Σ_t (1 − π(y_t)) over all response tokens in ``space``
    (``post``: with the prompt, ``pre``: with c alone): share of tokens × mean 1 − π, normalised."""
    raw = {cls: row["share"] * row[f"one_minus_p_{space}"] for cls, row in table.items()}
    raw = {cls: v for cls, v in raw.items() if np.isfinite(v)}
    total = sum(raw.values())
    return {cls: v / total if total > 0 else float("nan") for cls, v in raw.items()}


# The sentences a solution is made of (prerl/data/mini_task.py, styles.py); anything else is malformed.
WELL_FORMED = re.compile(
    r"^(wait, check )?\d+(\+\d+)*=\d+, write \d( carry \d+)?$"  # a column
    r"|^check \d+(\+\d+)*=\d+ ok$|^bring down \d+$|^Check each column$|^So the answer is \\boxed\{\d+\}$"
)


def response_shape(texts: list[str]) -> dict[str, float]:
    """Sentences per response and the share of them that are none of the corpus's sentence forms."""
    sentences = [[x.strip() for x in t.split(". ") if x.strip()] for t in texts]
    flat = [x.rstrip(".") for row in sentences for x in row]
    return {
        "sentences": float(np.mean([len(r) for r in sentences])),
        "malformed": float(np.mean([not WELL_FORMED.match(x) for x in flat])) if flat else float("nan"),
    }


def opening_style(text: str) -> str:
    if text.startswith("So the answer"):
        return "guess"
    return "checked" if text.startswith("Check") else "columns"


class Probe:
    """Fixed base-model responses, scored under the current policy in both spaces."""

    def __init__(self, exp, prompts: list[list[int]], per_prompt: int):
        """``prompts``: the first test problems, sampled and scored at the run's rollout temperature."""
        engine, ctx, rollout = exp.engine, exp.context_id, exp.cfg.rollout
        self.temperature = rollout.temperature
        post = engine.generate(prompts, per_prompt, self.temperature, 1.0, rollout.max_new_tokens)
        pre = engine.generate([[ctx]], len(prompts) * per_prompt, self.temperature, 1.0, rollout.max_new_tokens)
        pad = exp.tokenizer.pad_token_id
        self.post = pack([post.prompt_ids[g] for g in post.group], post.response_ids, pad)
        self.post_as_pre = pack([[ctx] for _ in post.group], post.response_ids, pad)
        self.pre = pack([[ctx] for _ in pre.group], pre.response_ids, pad)
        self.classes, classify = CLASSIFIERS[exp.cfg.data.name]
        classes = [classify(r, post.prompt_ids[g], exp.tokenizer) for r, g in zip(post.response_ids, post.group)]
        self.correct = np.asarray(exp.graders["test"](post.texts, post.group), dtype=float)
        self.n_tokens = sum(map(len, classes))
        # per class, the (row, position) indices of its tokens: computed once, read every update
        self.where = {
            cls: tuple(np.array(ix, dtype=int).reshape(-1, 2).T)
            for cls in self.classes
            for ix in [[(i, t) for i, row in enumerate(classes) for t, c in enumerate(row) if c == cls]]
        }
        self.mb = exp.cfg.optim.micro_batch_tokens
        self.base = self.logps(exp.model)

    def logps(self, model) -> dict[str, torch.Tensor]:
        return {
            name: score_logprobs(model, seqs, self.mb, self.temperature)
            for name, seqs in (("post", self.post), ("post_as_pre", self.post_as_pre), ("pre", self.pre))
        }

    def measure(self, model) -> dict[str, float]:
        now = self.logps(model)
        out = {}
        for space, seqs in (("post", self.post), ("pre", self.pre)):  # sequence KL on the base's own samples
            out[f"kl_{space}"] = float(((self.base[space] - now[space]) * seqs.response_mask).sum(-1).mean())
        for name, key in (("post", "post"), ("pre", "post_as_pre")):
            delta = (now[key] - self.base[key]).numpy()
            for cls in self.classes:
                values = delta[self.where[cls]]
                out[f"dlogp_{name}/{cls}"] = float(values.mean()) if len(values) else float("nan")
                # a mean hides a few tokens that collapse: the share whose probability at least halved
                out[f"halved_{name}/{cls}"] = float((values < -np.log(2)).mean()) if len(values) else float("nan")
        return out

    def base_table(self, wrong_only: bool = False) -> dict[str, dict[str, float]]:
        """Per class at the base model: share of tokens, mean log-prob with the prompt and without it, and
        mean 1 − π(y_t): the weight a token's logit gets in the gradient of log π(y_t) (∂/∂z = 1 − π).
        ``wrong_only``: over the wrong responses alone, the ones NSR-PreRL penalises."""
        spaces = {"post": self.base["post"].numpy(), "pre": self.base["post_as_pre"].numpy()}
        keep = {cls: self.where[cls] for cls in self.classes}
        if wrong_only:
            keep = {cls: tuple(a[self.correct[rows] == 0] for a in (rows, cols)) for cls, (rows, cols) in keep.items()}
        n_tokens = sum(len(rows) for rows, _ in keep.values())
        table = {}
        for cls in self.classes:
            table[cls] = {"share": len(keep[cls][0]) / n_tokens if n_tokens else float("nan")}
            for space, logp in spaces.items():
                values = logp[keep[cls]]
                table[cls] |= {
                    f"logp_{space}": float(values.mean()) if len(values) else float("nan"),
                    f"one_minus_p_{space}": float((1 - np.exp(values)).mean()) if len(values) else float("nan"),
                }
        return table


def flat_weights(model) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1).float() for p in model.parameters()])


def fresh_samples(exp, prompts: list[list[int]], per_prompt: int) -> dict[str, float]:
    """Samples of the first test problems at the run's rollout temperature, scored as training scores."""
    rollout = exp.cfg.rollout
    out = exp.engine.generate(prompts, per_prompt, rollout.temperature, 1.0, rollout.max_new_tokens)
    correct = exp.graders["test"](out.texts, out.group)
    styles = [opening_style(t) for t in out.texts]
    lengths = [len(r) for r in out.response_ids]
    return {
        "accuracy": float(np.mean(correct)),
        "length": float(np.mean(lengths)),
        "waits": float(np.mean([t.count("wait") for t in out.texts])),
        "rechecks": float(np.mean([t.count(" ok.") for t in out.texts])),
        "boxed": float(np.mean(["\\boxed{" in t for t in out.texts])),
        "truncated": float(np.mean(out.truncated)),
        **response_shape(out.texts),
        **{f"style/{s}": styles.count(s) / len(styles) for s in ("guess", "columns", "checked")},
        "example": out.texts[0],
    }


def run(overrides: list[str], steps: int, probe_problems: int, sample_every: int, base_only: bool = False) -> dict:
    import prerl.train.trainer as trainer

    start = time.perf_counter()
    register_configs()
    tmp = Path(tempfile.mkdtemp(prefix="prerl-diag-"))
    base = [
        f"total_steps={steps}",
        f"warmup_steps={steps}",
        f"output_dir={tmp / 'out'}",
        f"tracking.uri=sqlite:///{tmp / 'mlflow.db'}",
        "tracking.log_samples=0",
    ]
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        cfg = compose(config_name="config", overrides=base + overrides)
    run_cfg, resolved = OmegaConf.to_object(cfg), OmegaConf.to_container(cfg, resolve=True)
    exp = trainer.Experiment(run_cfg, resolved)
    try:
        test = exp.splits["test"].select(range(min(probe_problems, len(exp.splits["test"]))))
        prompts = test["prompt_ids"]
        probe = Probe(exp, prompts, per_prompt=2)
        theta0 = flat_weights(exp.model)
        rms0 = float(theta0.pow(2).mean().sqrt())
        result = {
            "overrides": overrides,
            "steps": steps,
            "probe_problems": len(prompts),
            "lr": run_cfg.optim.lr,
            "rms_weight": rms0,
            "lr_over_rms": run_cfg.optim.lr / rms0,
            "grad_clip": run_cfg.optim.grad_clip,
            "loss_coef": run_cfg.objective.loss_coef,
            "task": run_cfg.data.name,
            "classes": list(probe.classes),
            "probe_accuracy": float(probe.correct.mean()),
            "base_classes": probe.base_table(),
            "base_classes_wrong": probe.base_table(wrong_only=True),
            "updates": [],
            "samples": {},
        }
        if base_only:
            return result | {"seconds": time.perf_counter() - start}
        result["samples"][0] = fresh_samples(exp, prompts, 4)
        previous = theta0
        for step in range(steps):
            metrics = exp.step(step)
            theta = flat_weights(exp.model)
            record = {
                "step": step + 1,
                "rel_change": float((theta - previous).norm() / previous.norm()),
                "drift": float((theta - theta0).norm() / theta0.norm()),
                **{
                    k.removeprefix("train/"): metrics[k]
                    for k in ("train/grad_norm", "train/accuracy", "train/response_length", "train/kept_samples")
                },
                **probe.measure(exp.model),
            }
            result["updates"].append(record)
            previous = theta
            if (step + 1) % sample_every == 0 or step + 1 == steps:
                result["samples"][step + 1] = fresh_samples(exp, prompts, 4)
        return result | {"seconds": time.perf_counter() - start}
    finally:
        exp.tracker.finish()


def shapes(models: list[str], problems: int) -> dict:
    from .common import load, sample

    rows = {}
    print("| model | accuracy | length (tokens) | sentences | malformed sentences | guess / columns / checked |")
    print("|---|---|---|---|---|---|")
    for spec in models:
        s = sample(load(spec), "test", problems, 8)
        shape, styles = response_shape(s.texts), [opening_style(t) for t in s.texts]
        rows[spec] = {
            "accuracy": float(np.mean(s.correct)),
            "length": float(np.mean([len(r) for r in s.response_ids])),
            **shape,
            **{k: styles.count(k) / len(styles) for k in ("guess", "columns", "checked")},
        }
        r = rows[spec]
        print(
            f"| {spec} | {r['accuracy']:.2f} | {r['length']:.1f} | {r['sentences']:.2f} | {100 * r['malformed']:.1f}% | "
            f"{r['guess']:.2f} / {r['columns']:.2f} / {r['checked']:.2f} |",
            flush=True,
        )
    return rows


def summary(results: dict[str, dict]) -> str:
    """One row per saved result: the step size, the clip, the drift and what the samples became (the
    results of one task: its token classes head the column)."""
    names = next(iter(results.values())).get("classes", CLASSES) if results else CLASSES
    head = (
        "| variant | lr / RMS(θ) | mean ‖Δθ‖/‖θ‖ | max grad norm (clip) | KL post / pre at end | "
        f"tokens of base samples whose π(y_t given x) at least halved, per class: {', '.join(names)} | "
        "accuracy | length | waits | guess share |"
    )
    lines = [head, "|" + "---|" * head.count(" |")]
    for name, r in sorted(results.items()):
        u, first, last = r["updates"], r["samples"]["0"], r["samples"][str(r["steps"])]
        classes = ", ".join(f"{100 * u[-1][f'halved_post/{c}']:.0f}%" for c in r.get("classes", CLASSES))
        lines.append(
            f"| {name} | {r['lr_over_rms']:.1e} | {np.mean([x['rel_change'] for x in u]):.1e} | "
            f"{max(x['grad_norm'] for x in u):.3f} ({r['grad_clip']}) | {u[-1]['kl_post']:.2f} / {u[-1]['kl_pre']:.2f} | "
            f"{classes} | {first['accuracy']:.2f} → {last['accuracy']:.2f} | {first['length']:.1f} → {last['length']:.1f} | "
            f"{first['waits']:.2f} → {last['waits']:.2f} | {first['style/guess']:.2f} → {last['style/guess']:.2f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--probe-problems", type=int, default=32)
    parser.add_argument("--sample-every", type=int, default=10)
    parser.add_argument("--out", help="a JSON file; with --study, --summarise: a folder")
    parser.add_argument("--study", action="store_true", help="run every STUDY variant on its tasks")
    parser.add_argument("--summarise", action="store_true", help="print the table of the JSON files in --out")
    parser.add_argument("--base-only", action="store_true", help="only the base model's per-class table")
    parser.add_argument(
        "--shape",
        nargs="+",
        metavar="MODEL",
        help="sample each model (mini, mini_styles, a final_policy folder) and print the shape of "
        "its responses: accuracy, length, sentences, malformed share, styles",
    )
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args(argv)
    if args.shape:
        return shapes(args.shape, args.probe_problems)
    if not args.out:
        parser.error("--out is required")
    if args.summarise:
        results = {p.stem: json.loads(p.read_text()) for p in sorted(Path(args.out).glob("*.json"))}
        print(summary(results))
        return results
    if args.base_only:
        result = run(args.overrides, 0, args.probe_problems, 1, base_only=True)
        Path(args.out).write_text(json.dumps(result, indent=1))
        print(json.dumps(result["base_classes"], indent=1))
        return result
    jobs = (
        {Path(args.out): args.overrides}
        if not args.study
        else {
            Path(args.out) / f"{task}-{name}.json": [f"model={task}", *overrides, *args.overrides]
            for name, (overrides, tasks) in STUDY.items()
            for task in tasks
        }
    )
    results = {}
    for out, overrides in jobs.items():
        if args.study and out.exists():  # resumable: a finished variant is kept
            continue
        result = run(overrides, args.steps, args.probe_problems, args.sample_every)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=1))
        results[out.stem] = json.loads(out.read_text())
        print(summary({out.stem: results[out.stem]}).splitlines()[-1], flush=True)
    return results


if __name__ == "__main__":
    main()
