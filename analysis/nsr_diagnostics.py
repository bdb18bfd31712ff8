"""What an objective does to the mini model, update by update (the NSR-PreRL investigation).

It trains one objective from the base model with the trainer's own step and, after every update, records

- the relative weight change ‖Δθ‖/‖θ‖ and the drift ‖θ − θ₀‖/‖θ₀‖, beside ``lr / RMS(θ₀)``: Adam moves
  each weight by at most about ``lr`` per update, so that is the largest relative change the learning
  rate allows, whatever the loss scale (``loss_coef`` cancels under Adam);
- the gradient norm before clipping, against ``optim.grad_clip`` (does the clip act?);
- KL(π₀ ‖ π_θ) per response in post-train space (on base samples to fixed prompts) and in pre-train
  space (on base samples of P(y | c), drawn with the context token alone as the prompt);
- per token class of the post-space probe responses, the mean change of log π(y_t | x, y<t) and of
  log π(y_t | c, y<t) since the base model (classes: ``operand`` digits of a column sentence, i.e.
  copied from the prompt, or the incoming carry; ``computed`` digits; ``reflection`` words — wait,
  check, ok; ``eos``; ``format``: every other token);

and every ``--sample-every`` updates, fresh samples: accuracy, length, reflections per response, and
which style the response opens with (``guess``: "So the answer is", ``checked``: "Check", else
``columns``), with what was left out of the response when it got shorter.

    python -m analysis.nsr_diagnostics --steps 30 --out docs/mini-study/diag.json objective=nsr_prerl
    python -m analysis.nsr_diagnostics --steps 30 --out d.json objective=nsr_prerl model=mini_styles optim.lr=2e-6

Everything after the options is a Hydra override of ``train.py``'s config (the objective trains for
all ``--steps`` updates).
"""

from __future__ import annotations

import argparse
import json
import re
import tempfile
from pathlib import Path

import numpy as np
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from prerl.config import register_configs
from prerl.rewards import score
from prerl.scoring import pack, score_logprobs

CONF = str(Path(__file__).resolve().parents[1] / "conf")
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


def opening_style(text: str) -> str:
    if text.startswith("So the answer"):
        return "guess"
    return "checked" if text.startswith("Check") else "columns"


class Probe:
    """Fixed base-model responses, scored under the current policy in both spaces."""

    def __init__(self, exp, prompts: list[list[int]], per_prompt: int):
        engine, ctx = exp.engine, exp.context_id
        post = engine.generate(prompts, per_prompt, 1.0, 1.0, exp.cfg.rollout.max_new_tokens)
        pre = engine.generate([[ctx]], len(prompts) * per_prompt, 1.0, 1.0, exp.cfg.rollout.max_new_tokens)
        pad = exp.tokenizer.pad_token_id
        self.post = pack([post.prompt_ids[g] for g in post.group], post.response_ids, pad)
        self.post_as_pre = pack([[ctx] for _ in post.group], post.response_ids, pad)
        self.pre = pack([[ctx] for _ in pre.group], pre.response_ids, pad)
        self.classes = [token_classes(r, exp.tokenizer) for r in post.response_ids]
        self.mb = exp.cfg.optim.micro_batch_tokens
        self.base = self.logps(exp.model)

    def logps(self, model) -> dict[str, torch.Tensor]:
        return {name: score_logprobs(model, seqs, self.mb)
                for name, seqs in (("post", self.post), ("post_as_pre", self.post_as_pre), ("pre", self.pre))}

    def measure(self, model) -> dict[str, float]:
        now = self.logps(model)
        out = {}
        for space, seqs in (("post", self.post), ("pre", self.pre)):  # sequence KL on the base's own samples
            out[f"kl_{space}"] = float(((self.base[space] - now[space]) * seqs.response_mask).sum(-1).mean())
        for name, key in (("post", "post"), ("pre", "post_as_pre")):
            delta = (now[key] - self.base[key]).numpy()
            for cls in CLASSES:
                values = [delta[i, t] for i, row in enumerate(self.classes) for t, c in enumerate(row) if c == cls]
                out[f"dlogp_{name}/{cls}"] = float(np.mean(values)) if values else float("nan")
        return out

    def base_table(self) -> dict[str, dict[str, float]]:
        """Per class at the base model: share of tokens, mean log-prob with the prompt and without it."""
        post, pre = self.base["post"].numpy(), self.base["post_as_pre"].numpy()
        n = sum(len(r) for r in self.classes)
        table = {}
        for cls in CLASSES:
            where = [(i, t) for i, row in enumerate(self.classes) for t, c in enumerate(row) if c == cls]
            table[cls] = {"share": len(where) / n,
                          "logp_post": float(np.mean([post[i, t] for i, t in where])) if where else float("nan"),
                          "logp_pre": float(np.mean([pre[i, t] for i, t in where])) if where else float("nan")}
        return table


def flat_weights(model) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1).float() for p in model.parameters()])


def fresh_samples(exp, prompts: list[list[int]], answers: list[str], per_prompt: int) -> dict[str, float]:
    out = exp.engine.generate(prompts, per_prompt, 1.0, 1.0, exp.cfg.rollout.max_new_tokens)
    correct = score(out.texts, [answers[g] for g in out.group])
    styles = [opening_style(t) for t in out.texts]
    lengths = [len(r) for r in out.response_ids]
    return {"accuracy": float(np.mean(correct)), "length": float(np.mean(lengths)),
            "waits": float(np.mean([t.count("wait") for t in out.texts])),
            "rechecks": float(np.mean([t.count(" ok.") for t in out.texts])),
            "boxed": float(np.mean(["\\boxed{" in t for t in out.texts])),
            "truncated": float(np.mean(out.truncated)),
            **{f"style/{s}": styles.count(s) / len(styles) for s in ("guess", "columns", "checked")},
            "example": out.texts[0]}


def run(overrides: list[str], steps: int, probe_problems: int, sample_every: int) -> dict:
    import prerl.trainer as trainer

    register_configs()
    tmp = Path(tempfile.mkdtemp(prefix="prerl-diag-"))
    base = [f"total_steps={steps}", f"warmup_steps={steps}", f"output_dir={tmp / 'out'}",
            f"tracking.uri=sqlite:///{tmp / 'mlflow.db'}", "tracking.log_samples=0"]
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        cfg = compose(config_name="config", overrides=base + overrides)
    run_cfg, resolved = OmegaConf.to_object(cfg), OmegaConf.to_container(cfg, resolve=True)
    exp = trainer.Experiment(run_cfg, resolved)
    try:
        test = exp.splits["test"].select(range(probe_problems))
        prompts, answers = test["prompt_ids"], test["answer"]
        probe = Probe(exp, prompts, per_prompt=2)
        theta0 = flat_weights(exp.model)
        rms0 = float(theta0.pow(2).mean().sqrt())
        result = {"overrides": overrides, "steps": steps, "lr": run_cfg.optim.lr, "rms_weight": rms0,
                  "lr_over_rms": run_cfg.optim.lr / rms0, "grad_clip": run_cfg.optim.grad_clip,
                  "loss_coef": run_cfg.objective.loss_coef, "base_classes": probe.base_table(),
                  "updates": [], "samples": {0: fresh_samples(exp, prompts, answers, 4)}}
        previous = theta0
        for step in range(steps):
            metrics = exp.step(step)
            theta = flat_weights(exp.model)
            record = {"step": step + 1,
                      "rel_change": float((theta - previous).norm() / previous.norm()),
                      "drift": float((theta - theta0).norm() / theta0.norm()),
                      **{k.removeprefix("train/"): metrics[k] for k in
                         ("train/grad_norm", "train/accuracy", "train/response_length", "train/kept_samples")},
                      **probe.measure(exp.model)}
            result["updates"].append(record)
            previous = theta
            if (step + 1) % sample_every == 0 or step + 1 == steps:
                result["samples"][step + 1] = fresh_samples(exp, prompts, answers, 4)
        return result
    finally:
        exp.tracker.finish()


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--probe-problems", type=int, default=32)
    parser.add_argument("--sample-every", type=int, default=10)
    parser.add_argument("--out", required=True)
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args(argv)
    result = run(args.overrides, args.steps, args.probe_problems, args.sample_every)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))
    last = result["updates"][-1]
    print(f"{' '.join(args.overrides)}: lr/RMS {result['lr_over_rms']:.2e}, mean ‖Δθ‖/‖θ‖ "
          f"{np.mean([u['rel_change'] for u in result['updates']]):.2e}, drift {last['drift']:.3f}, "
          f"KL post {last['kl_post']:.2f} pre {last['kl_pre']:.2f}, grad norm max "
          f"{max(u['grad_norm'] for u in result['updates']):.3f}; samples {json.dumps(result['samples'][args.steps])}")
    return result


if __name__ == "__main__":
    main()
