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
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf

from prerl import data as data_lib
from prerl.advantages import AdvantageInputs, Advantages
from prerl.behaviours import behaviour_metrics
from prerl.config import KLPlacement, ObjectiveAdvantage, Space, TrainConfig
from prerl.critic import Critic
from prerl.benchmarks import eval_sets
from prerl.evaluation import evaluate
from prerl.losses import kl_penalty
from prerl.models import context_token_id, load_policy, resolve_device
from prerl.objectives import Phase, main_phase, phase_advantages, sample_mask, warmup_phase, weight_advantages
from prerl.rewards import overlong_penalty, score
from prerl.rollout import Rollout, make_engine
from prerl.scorers import dataset_grader
from prerl.rollout.base import concat, select_groups
from prerl.scoring import Sequences, contexts, pack, score_logprobs
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


def group_outcomes(accuracy: torch.Tensor, group: torch.Tensor) -> dict[str, float]:
    """Prompt counts: fully solved, fully unsolved, solved at least once, and mixed (the ones with signal)."""
    n = int(group.max()) + 1
    correct = torch.zeros(n).index_add_(0, group, accuracy.float())
    size = torch.zeros(n).index_add_(0, group, torch.ones_like(accuracy, dtype=torch.float))
    return {
        "prompts/fully_solved": float((correct == size).sum()),
        "prompts/fully_unsolved": float((correct == 0).sum()),
        "prompts/solved_at_least_once": float((correct > 0).sum()),
        "prompts/mixed": float(((correct > 0) & (correct < size)).sum()),
    }


class Stopwatch:
    """Seconds per stage of a step."""

    def __init__(self):
        self.start = self.last = time.perf_counter()
        self.laps: dict[str, float] = {}

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.laps[name] = now - self.last
        self.last = now

    @property
    def total(self) -> float:
        return self.last - self.start


@dataclass
class Experience:
    """One step's scored samples."""

    rollout: Rollout
    accuracy: torch.Tensor  # [N] outcome reward (1 correct, 0 wrong)
    scores: torch.Tensor  # [N] the reward the advantage sees (accuracy + shaping)
    sampling_rounds: int


def informative_groups(accuracy: torch.Tensor, group: list[int]) -> list[int]:
    """Prompts whose samples disagree (DAPO's filter: std of accuracy > 0, or a single sample)."""
    by_group: dict[int, list[float]] = {}
    for g, a in zip(group, accuracy.tolist()):
        by_group.setdefault(g, []).append(a)
    return [g for g, values in by_group.items() if len(values) == 1 or len(set(values)) > 1]


class Experiment:
    """Everything a run holds: policy, reference, critic, optimizer, data, engine, tracker."""

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
        self.critic = Critic(self.model, cfg.algorithm.critic, cfg.optim) if cfg.algorithm.uses_critic else None
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

    def collect(self) -> Experience:
        """Rollout and reward; with ``filter_groups`` keep sampling until enough informative prompts."""
        algo, wanted = self.cfg.algorithm, self.cfg.prompts_per_step
        parts, accs, rounds = [], [], 0
        while sum(len(p.prompt_ids) for p in parts) < wanted:
            if rounds == algo.max_sampling_rounds:
                raise RuntimeError(
                    f"dynamic sampling found {sum(len(p.prompt_ids) for p in parts)} of {wanted} prompts with "
                    f"mixed rewards in {rounds} rounds; raise algorithm.max_sampling_rounds or turn "
                    "algorithm.filter_groups off")
            rounds += 1
            rollout, answers = self.rollout(next(self.prompts))
            accuracy = self.reward(rollout, answers)
            if algo.filter_groups:
                keep = informative_groups(accuracy, rollout.group)
                rows = [i for i, g in enumerate(rollout.group) if g in set(keep)]
                rollout, accuracy = select_groups(rollout, keep), accuracy[rows]
            parts.append(rollout)
            accs.append(accuracy)
        rollout = concat(parts)
        accuracy = torch.cat(accs)
        if len(rollout.prompt_ids) > wanted:  # trim to the batch size, whole groups only
            rows = [i for i, g in enumerate(rollout.group) if g < wanted]
            rollout, accuracy = select_groups(rollout, list(range(wanted))), accuracy[rows]
        lengths = [len(r) for r in rollout.response_ids]
        shaping = overlong_penalty(lengths, self.cfg.rollout.max_new_tokens, algo.overlong_buffer_tokens,
                                   algo.overlong_penalty_factor)
        return Experience(rollout, accuracy, accuracy + torch.tensor(shaping), rounds)

    def sequences(self, rollout: Rollout, space: Space) -> Sequences:
        ctx = contexts(space, rollout.prompt_ids, rollout.group, self.context_id)
        return pack(ctx, rollout.response_ids, self.tokenizer.pad_token_id)

    def token_kl(self, seqs: Sequences) -> torch.Tensor:
        mb = self.cfg.optim.micro_batch_tokens
        logp = score_logprobs(self.model, seqs, mb)
        ref = score_logprobs(self.reference, seqs, mb)
        return kl_penalty(logp, ref, self.cfg.algorithm.kl.estimator) * seqs.response_mask

    def prepare(self, phase: Phase, exp: Experience) -> tuple[UpdateBatch, Sequences, Advantages]:
        """Advantages and the objective's loss mask: everything the update needs."""
        algo = self.cfg.algorithm
        seqs = self.sequences(exp.rollout, phase.space)
        post = seqs if phase.space == Space.post else self.sequences(exp.rollout, Space.post)
        uses_algorithm = phase.advantage == ObjectiveAdvantage.algorithm
        kl_in_reward = uses_algorithm and phase.regularised and algo.kl.placement == KLPlacement.reward
        adv_in = AdvantageInputs(
            scores=exp.scores, group=torch.tensor(exp.rollout.group), mask=seqs.response_mask,
            token_kl=self.token_kl(post) if kl_in_reward else None,
            values=self.critic.values(post) if uses_algorithm and self.critic else None,
        )
        adv = phase_advantages(phase, adv_in, algo)
        advantages = weight_advantages(phase, adv.advantages.float())
        loss_mask = sample_mask(phase, advantages, seqs.response_mask)
        if algo.mask_truncated:
            loss_mask = loss_mask * (~torch.tensor(exp.rollout.truncated)).float().unsqueeze(-1)
        ref_logp = None
        if phase.regularised and algo.kl.placement == KLPlacement.loss:
            ref_logp = score_logprobs(self.reference, seqs, self.cfg.optim.micro_batch_tokens)
        return UpdateBatch(seqs, advantages, loss_mask, ref_logp), post, adv

    def reincarnate(self) -> None:
        """Policy Reincarnation: the warm-up policy becomes the new start (and KL anchor)."""
        rc = self.cfg.reincarnation
        if rc.reset_reference and self.reference is not None:
            self.reference.load_state_dict(self.model.state_dict())
        if rc.reset_optimizer:
            self.optimizer.state.clear()

    # --- the loop -------------------------------------------------------------------------

    def step(self, step: int) -> dict[str, float]:
        cfg = self.cfg
        phase = phase_at(step, cfg)
        clock = Stopwatch()
        exp = self.collect()  # rollout → reward
        clock.lap("rollout_reward")
        batch, post, adv = self.prepare(phase, exp)  # advantage → objective mask
        clock.lap("advantage")
        stats = policy_update(self.model, self.optimizer, batch, phase, cfg.algorithm, cfg.optim,
                              cfg.rollout.max_new_tokens)  # loss → step
        if self.critic is not None and adv.returns is not None:  # PPO: fit V to the returns
            stats |= self.critic.update(post, adv.returns, self.critic.values(post))
        self.engine.sync_weights()
        clock.lap("update")
        return self.step_metrics(phase, exp, batch, stats, clock)

    def step_metrics(self, phase, exp: Experience, batch: UpdateBatch, stats: dict, clock) -> dict[str, float]:
        lengths = batch.seqs.response_mask.sum(-1)
        group = torch.tensor(exp.rollout.group)
        metrics = {f"train/{k}" if "/" not in k else k: v for k, v in stats.items()}
        metrics |= {
            "train/accuracy": float(exp.accuracy.mean()),
            "train/reward": float(exp.scores.mean()),
            "train/kept_samples": float((batch.loss_mask.sum(-1) > 0).float().mean()),
            "train/response_length": float(lengths.mean()),
            "train/truncated_frac": float(np.mean(exp.rollout.truncated)),
            "train/sampling_rounds": float(exp.sampling_rounds),
            "train/warmup": float(phase.name == "warmup"),
            "time/tokens_per_s": float(lengths.sum()) / clock.total,
        }
        metrics |= {f"time/{name}_s": seconds for name, seconds in clock.laps.items()}
        metrics |= {"time/step_s": clock.total}
        metrics |= {f"train/{k}": v for k, v in group_outcomes(exp.accuracy, group).items()}
        metrics |= behaviour_metrics(exp.rollout.texts)  # reasoning behaviours per response (prerl/behaviours.py)
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
