"""The training loop: warm-up objective → Policy Reincarnation → main algorithm.

Each step reads like the paper: rollout → reward → advantage → objective mask → loss → step → log.
What differs between objectives and algorithms lives in the ``Phase`` and in registered functions
(advantage estimators, policy losses), never in branches of this loop.
"""

from __future__ import annotations

import copy
import logging
import random
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf

from prerl import data as data_lib
from prerl.advantages import AdvantageInputs
from prerl.behaviours import behaviour_metrics
from prerl.config import KLPlacement, TrainConfig
from prerl.benchmarks import eval_sets
from prerl.evaluation import evaluate
from prerl.losses import kl_penalty
from prerl.models import context_token_id, load_policy, resolve_device
from prerl.objectives import Phase, main_phase, phase_advantages, sample_mask, warmup_phase, weight_advantages
from prerl.rewards import score
from prerl.rollout import Rollout, make_engine
from prerl.scorers import dataset_grader
from prerl.scoring import contexts, pack, score_logprobs
from prerl.tracking import Tracker
from prerl.update import UpdateBatch, policy_update

log = logging.getLogger(__name__)


def phase_at(step: int, cfg: TrainConfig) -> Phase:
    """Steps 0..warmup_steps−1 train the objective; later steps train the algorithm."""
    return warmup_phase(cfg.objective) if step < cfg.warmup_steps else main_phase(cfg.algorithm)


def prompt_stream(n_rows: int, per_step: int, seed: int):
    """Endless batches of row indices: reshuffled every epoch, deterministic in ``seed``."""
    rng = np.random.default_rng(seed)
    order, pos = rng.permutation(n_rows), 0
    while True:
        if pos + per_step > n_rows:
            order, pos = rng.permutation(n_rows), 0
        yield order[pos : pos + per_step].tolist()
        pos += per_step


def group_outcomes(scores: torch.Tensor, group: torch.Tensor) -> dict[str, float]:
    """Fractions of prompts whose samples are all correct, all wrong, or mixed (the only ones with signal)."""
    n = int(group.max()) + 1
    correct = torch.zeros(n).index_add_(0, group, scores)
    size = torch.zeros(n).index_add_(0, group, torch.ones_like(scores))
    return {
        "groups/all_correct": float((correct == size).float().mean()),
        "groups/all_wrong": float((correct == 0).float().mean()),
        "groups/mixed": float(((correct > 0) & (correct < size)).float().mean()),
    }


class Experiment:
    """Everything a run holds: policy, reference, optimizer, data, engine, tracker."""

    def __init__(self, cfg: TrainConfig, resolved: dict):
        self.cfg = cfg
        random.seed(cfg.seed)
        torch.manual_seed(cfg.seed)
        self.device = resolve_device(cfg.device)
        self.model, self.tokenizer = load_policy(cfg.model, cfg.cache_dir, self.device)
        self.context_id = context_token_id(self.tokenizer, cfg.model.context_token)
        splits = data_lib.load_splits(cfg.data)
        splits = {**splits, **eval_sets(cfg.eval, lambda: splits)}  # benchmarks, or splits of the data
        self.splits = {name: data_lib.render(ds, self.tokenizer, cfg.model.chat_template_kwargs)
                       for name, ds in splits.items()}
        self.engine = make_engine(cfg.rollout, self.model, self.tokenizer)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=cfg.optim.lr,
                                           weight_decay=cfg.optim.weight_decay, betas=tuple(cfg.optim.betas))
        uses_ref = cfg.algorithm.kl.placement != KLPlacement.none
        self.reference = copy.deepcopy(self.model).eval().requires_grad_(False) if uses_ref else None
        self.prompts = prompt_stream(len(self.splits["train"]), cfg.prompts_per_step, cfg.seed)
        self.tracker = Tracker(cfg.tracking)
        self.tracker.start(resolved, tags={"objective": cfg.objective.name, "algorithm": cfg.algorithm.name,
                                           "warmup_steps": str(cfg.warmup_steps)})

    # --- the pieces of a step -------------------------------------------------------------

    def rollout(self, rows: list[int]) -> tuple[Rollout, list[str]]:
        train = self.splits["train"].select(rows)
        r = self.cfg.rollout
        out = self.engine.generate(train["prompt_ids"], r.samples_per_prompt, r.temperature, r.top_p,
                                   r.max_new_tokens)
        return out, [train["answer"][g] for g in out.group]

    def reward(self, rollout: Rollout, answers: list[str]) -> torch.Tensor:
        return torch.tensor(score(rollout.texts, answers))

    def sequences(self, rollout: Rollout, phase: Phase):
        ctx = contexts(phase.space, rollout.prompt_ids, rollout.group, self.context_id)
        return pack(ctx, rollout.response_ids, self.tokenizer.pad_token_id)

    def token_kl(self, seqs) -> torch.Tensor:
        mb = self.cfg.optim.micro_batch_tokens
        logp = score_logprobs(self.model, seqs, mb)
        ref = score_logprobs(self.reference, seqs, mb)
        return kl_penalty(logp, ref, self.cfg.algorithm.kl.estimator) * seqs.response_mask

    def reincarnate(self) -> None:
        """Policy Reincarnation: the warm-up policy becomes the new start (and KL anchor)."""
        rc = self.cfg.reincarnation
        if rc.reset_reference and self.reference is not None:
            self.reference.load_state_dict(self.model.state_dict())
        if rc.reset_optimizer:
            self.optimizer.state.clear()

    # --- the loop -------------------------------------------------------------------------

    def step(self, step: int) -> dict[str, float]:
        cfg, algo = self.cfg, self.cfg.algorithm
        phase = phase_at(step, cfg)
        timer = time.perf_counter()
        rollout, answers = self.rollout(next(self.prompts))
        t_rollout = time.perf_counter() - timer
        scores = self.reward(rollout, answers)
        t_reward = time.perf_counter() - timer - t_rollout
        seqs = self.sequences(rollout, phase)
        kl_in_reward = phase.regularised and algo.kl.placement == KLPlacement.reward
        adv_in = AdvantageInputs(scores=scores, group=torch.tensor(rollout.group), mask=seqs.response_mask,
                                 token_kl=self.token_kl(seqs) if kl_in_reward else None)
        advantages = weight_advantages(phase, phase_advantages(phase, adv_in, algo).advantages.float())
        loss_mask = sample_mask(phase, advantages, seqs.response_mask)
        ref_logp = None
        if phase.regularised and algo.kl.placement == KLPlacement.loss:
            ref_logp = score_logprobs(self.reference, seqs, cfg.optim.micro_batch_tokens)
        stats = policy_update(self.model, self.optimizer, UpdateBatch(seqs, advantages, loss_mask, ref_logp),
                              phase, algo, cfg.optim, cfg.rollout.max_new_tokens)
        self.engine.sync_weights()
        t_total = time.perf_counter() - timer
        lengths = seqs.response_mask.sum(-1)
        metrics = {
            f"train/{k}": v for k, v in stats.items()
        } | {
            "train/reward": float(scores.mean()),
            "train/kept_samples": float((loss_mask.sum(-1) > 0).float().mean()),
            "train/response_length": float(lengths.mean()),
            "train/truncated_frac": float(np.mean(rollout.truncated)),
            "train/warmup": float(phase.name == "warmup"),
            "time/rollout_s": t_rollout,
            "time/reward_s": t_reward,
            "time/update_s": t_total - t_rollout - t_reward,
            "time/step_s": t_total,
            "time/tokens_per_s": float(lengths.sum()) / t_total,
        } | {f"train/{k}": v for k, v in group_outcomes(scores, adv_in.group).items()}
        metrics |= behaviour_metrics(rollout.texts)  # reasoning behaviours per response (prerl/behaviours.py)
        return metrics

    def evaluate(self, step: int) -> dict[str, float]:
        ev, out = self.cfg.eval, {}
        for name in ev.sets:
            split = self.splits[name]
            result = evaluate(self.engine, name, split["prompt_ids"], split["answer"], ev.samples_per_problem,
                              ev.temperature, ev.top_p, ev.max_new_tokens, grader=dataset_grader(split, ev))
            out.update({f"eval/{k}": v for k, v in result.metrics().items()})
            if self.cfg.tracking.log_samples:
                n = min(self.cfg.tracking.log_samples, len(result.responses))
                K = ev.samples_per_problem
                self.tracker.log_table({
                    "step": [step] * n,
                    "question": [split["messages"][i // K][-1]["content"] for i in range(n)],
                    "answer": [split["answer"][i // K] for i in range(n)],
                    "response": result.responses[:n],
                    "correct": result.correct.reshape(-1)[:n].tolist(),
                }, f"samples/{name}_step{step:05d}.json")
        return out

    def should_evaluate(self, step: int) -> bool:
        every = self.cfg.eval.every_steps
        return step == 0 or step == self.cfg.total_steps or (every > 0 and step % every == 0)


def train(cfg: TrainConfig, resolved: dict | None = None) -> dict[str, float]:
    """Run the experiment ``cfg`` and return the final eval metrics."""
    resolved = resolved if resolved is not None else OmegaConf.to_container(OmegaConf.structured(cfg), resolve=True)
    exp = Experiment(cfg, resolved)
    final: dict[str, float] = {}
    status = "FAILED"
    try:
        for step in range(cfg.total_steps + 1):
            if exp.should_evaluate(step):
                final = exp.evaluate(step)
                exp.tracker.log(final, step)
                log.info("step %d eval %s", step, {k: round(v, 4) for k, v in final.items() if "avg_at" in k})
            if step == cfg.total_steps:
                break
            if step == cfg.warmup_steps and step > 0:
                exp.reincarnate()
            metrics = exp.step(step)
            exp.tracker.log(metrics, step + 1)
            log.info("step %d/%d reward %.3f loss %.4f (%s) %.1fs", step + 1, cfg.total_steps,
                     metrics["train/reward"], metrics["train/loss"],
                     "warm-up" if metrics["train/warmup"] else "main", metrics["time/step_s"])
        save_dir = Path(cfg.output_dir) / "final_policy"
        exp.model.save_pretrained(save_dir)
        exp.tokenizer.save_pretrained(save_dir)
        status = "FINISHED"
    finally:
        exp.tracker.finish(status)
    return final


def headline(cfg: TrainConfig, metrics: dict[str, float]) -> float:
    """The number a sweeper optimises: final Avg@K on the first eval set."""
    key = f"eval/{next(iter(cfg.eval.sets), None)}/avg_at_{cfg.eval.samples_per_problem}"
    return metrics.get(key, float("nan"))
