"""The training loop: warm-up objective → Policy Reincarnation → main algorithm.

Each step reads like the paper: rollout → reward → advantage → objective mask → loss → step → log.
What differs between objectives and algorithms lives in the ``Phase`` and in registered functions
(advantage estimators, policy losses), never in branches of this loop.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import os
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import cast

import numpy as np
import torch
from omegaconf import OmegaConf

from prerl.algo import rollout_correction
from prerl.algo.advantages import AdvantageInputs, Advantages, needs_critic
from prerl.algo.losses import kl_penalty
from prerl.algo.objectives import Phase, main_phase, phase_advantages, select_samples, warmup_phase
from prerl.config.enums import KLPlacement, Space
from prerl.config.schema import TrainConfig
from prerl.data import splits as data_lib
from prerl.data.eval_sets import eval_sets
from prerl.eval.behaviours import behaviour_metrics
from prerl.eval.evaluator import evaluate_problems, gather_result, problem_ids
from prerl.launch.choices import check_choices
from prerl.models.loading import (
    DTYPES,
    autocast,
    compile_decoder_layers,
    compute_dtype,
    context_token_id,
    load_policy,
    resolve_device,
)
from prerl.parallel import distributed, fsdp
from prerl.rollout import Rollout, RunNeeds, make_engine, ranks_per_engine
from prerl.rollout.base import concat, select_groups
from prerl.scoring import Grader, settings_from
from prerl.scoring.rewards import overlong_penalty
from prerl.tracking.cost import CostMeter
from prerl.tracking.fingerprint import run_fingerprint
from prerl.tracking.run_info import dataset_inputs, sweep_metric
from prerl.tracking.tracker import NullTracker, Tracker
from prerl.train import checkpoint
from prerl.train.critic import Critic
from prerl.train.logprobs import Sequences, contexts, pack, score_logprobs, shares_contexts
from prerl.train.update import UpdateBatch, mini_batches, policy_updates

log = logging.getLogger(__name__)


def phase_at(step: int, cfg: TrainConfig) -> Phase:
    """Steps 0..warmup_steps−1 train the objective; later steps train the algorithm."""
    return warmup_phase(cfg.objective) if step < cfg.warmup_steps else main_phase(cfg.algorithm)


class PromptStream:
    """Endless batches of training-row indices, reshuffled every epoch; its state is checkpointed.

    Every rank holds the same stream (same seed) and draws the whole global batch from it once per
    sampling round, keeping its ``distributed.shard``; rounds are agreed across ranks (``collect``), so the
    streams never drift apart and the checkpointed one (rank 0's) restores every rank's position.
    """

    def __init__(self, n_rows: int, per_step: int, seed: int):
        if per_step > n_rows:
            raise ValueError(f"prompts_per_step={per_step} exceeds the {n_rows} training prompts")
        self.n_rows, self.per_step = n_rows, per_step
        self.rng = np.random.default_rng(seed)
        self.order, self.pos = self.rng.permutation(n_rows), 0

    def __next__(self) -> list[int]:
        if self.pos + self.per_step > self.n_rows:
            self.order, self.pos = self.rng.permutation(self.n_rows), 0
        self.pos += self.per_step
        return self.order[self.pos - self.per_step : self.pos].tolist()

    def state_dict(self) -> dict:
        """Plain Python values: two ranks' states compare with ``==``."""
        return {"rng": self.rng.bit_generator.state, "order": self.order.tolist(), "pos": self.pos}

    def load_state_dict(self, state: dict) -> None:
        self.rng.bit_generator.state = state["rng"]
        self.order, self.pos = np.asarray(state["order"]), state["pos"]


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
    generated_tokens: int  # response tokens sampled this step, in every round (dynamic sampling drops some)


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
        if cfg.deterministic:
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # cuBLAS needs it for repeatable GEMMs
            torch.use_deterministic_algorithms(True)
        # first: an unreachable store fails before any model loads; only rank 0 logs
        self.tracker = Tracker(cfg.tracking) if distributed.is_main() else NullTracker()
        self.device = resolve_device(cfg.device)
        self.model, self.tokenizer = load_policy(cfg.model, cfg.cache_dir, self.device)
        # copies first, then each model is wrapped by the strategy (sharded under fsdp2) before its optimizer
        strategy = distributed.STRATEGIES[cfg.distributed.strategy]
        dtype = compute_dtype(cfg.model, self.device)

        def wrap(model):
            return strategy(model, DTYPES[dtype] if dtype else None)

        uses_ref = cfg.algorithm.kl.placement != KLPlacement.none
        self.reference = wrap(copy.deepcopy(self.model).eval().requires_grad_(False)) if uses_ref else None
        self.critic = (
            Critic(self.model, cfg.algorithm.critic, cfg.optim, wrap, self.compute)
            if needs_critic(cfg.algorithm.advantage)
            else None
        )
        self.model = wrap(self.model)
        if cfg.model.compile:  # after the copies and the wrapping (compile_decoder_layers)
            for model in [self.model, self.reference, self.critic.model if self.critic else None]:
                if model is not None:
                    compile_decoder_layers(model)
        self.context_id = context_token_id(self.tokenizer, cfg.model.context_token)
        # post-train space: a prompt forwarded once for its samples (optim.shared_prompt_forward)
        self.shares_prompts = (
            cfg.optim.shared_prompt_forward and not cfg.model.gradient_checkpointing and shares_contexts(self.model)
        )
        splits = data_lib.load_splits(cfg.data)
        splits = {**splits, **eval_sets(cfg.eval, lambda: splits)}  # benchmarks, or splits of the data
        self.splits = {
            name: data_lib.render(ds, self.tokenizer, cfg.model.chat_template_kwargs) for name, ds in splits.items()
        }
        # one reward path for training and evaluation: each set's rows with their scorer kinds and answers
        self.graders = {name: Grader.of(ds, settings_from(cfg.eval)) for name, ds in self.splits.items()}
        # Seeded here, after the models (building the base model draws numbers) and before the engine: what
        # it draws at start-up, and then every sample, agrees on the ranks of one engine and differs across
        # engines. vLLM reseeds the process while it starts, from rollout.vllm.seed + the engine's index: alike
        # within an engine too.
        distributed.seed_process(cfg.seed, ranks_per_engine(cfg.rollout))
        self.engine = make_engine(cfg.rollout, self.model, self.tokenizer, RunNeeds.of(cfg, self.device))
        self.optimizer = torch.optim.AdamW(
            self.model.parameters(),
            lr=cfg.optim.lr,
            weight_decay=cfg.optim.weight_decay,
            betas=(cfg.optim.betas[0], cfg.optim.betas[1]),
        )
        self.prompts = PromptStream(len(self.splits["train"]), cfg.prompts_per_step, cfg.seed)
        self.resolved = resolved
        self.nonfinite_in_a_row = 0
        self.cost = CostMeter()
        self.last_eval: dict[str, float] = {}

    # --- the pieces of a step -------------------------------------------------------------

    def compute(self):
        """The compute dtype of forwards and backwards (model.autocast): entered around each piece of a
        step on its own, never around an optimizer step and the forwards after it (``update.policy_update``)."""
        return autocast(self.cfg.model, self.device)

    def rollout_weights(self):
        """Whole weights for the rollout when the engine forwards the policy itself (fsdp.full_weights; ranks
        generate different numbers of tokens, so without it every forward would be a collective)."""
        if getattr(self.engine, "forwards_policy", True):
            return fsdp.full_weights(self.model)
        return contextlib.nullcontext()

    def rollout(self, rows: list[int]) -> tuple[Rollout, list[int]]:
        """This rank's share of the prompts ``rows``, sampled; the training-set row of every response."""
        mine = distributed.shard(rows)
        prompts = self.splits["train"].select(mine)["prompt_ids"]
        r = self.cfg.rollout
        out = self.engine.generate(prompts, r.samples_per_prompt, r.temperature, r.top_p, r.max_new_tokens)
        return out, [mine[g] for g in out.group]

    def reward(self, rollout: Rollout, problems: list[int]) -> torch.Tensor:
        return torch.tensor(self.graders["train"](rollout.texts, problems))

    def collect(self) -> Experience:
        """Rollout and reward; with ``filter_groups`` keep sampling until enough informative prompts.

        Every rank draws each round's global batch, samples its share and keeps the informative prompts
        of it, up to its own share of the step (``distributed.local_count``, whole groups). Whether every
        rank has its share is decided from counts summed over ranks, so all ranks sample the same number
        of rounds (their prompt streams stay equal) and reach ``max_sampling_rounds``, and its error,
        together. Without the filter one round fills every share: no count is exchanged.
        """
        algo, wanted = self.cfg.algorithm, distributed.local_count(self.cfg.prompts_per_step)
        parts: list[Rollout]
        parts, accs, rounds, generated = [], [], 0, 0
        while True:
            rounds += 1
            rollout, problems = self.rollout(next(self.prompts))
            accuracy = self.reward(rollout, problems)
            generated += sum(len(r) for r in rollout.response_ids)
            if algo.filter_groups:
                keep = informative_groups(accuracy, rollout.group)
                rows = [i for i, g in enumerate(rollout.group) if g in set(keep)]
                rollout, accuracy = select_groups(rollout, keep), accuracy[rows]
            parts.append(rollout)
            accs.append(accuracy)
            if not algo.filter_groups or self.enough_prompts(sum(len(p.prompt_ids) for p in parts), wanted, rounds):
                break
        rollout = concat(parts)
        accuracy = torch.cat(accs)
        if len(rollout.prompt_ids) > wanted:  # trim to this rank's share, whole groups only
            rows = [i for i, g in enumerate(rollout.group) if g < wanted]
            rollout, accuracy = select_groups(rollout, list(range(wanted))), accuracy[rows]
        lengths = [len(r) for r in rollout.response_ids]
        shaping = overlong_penalty(
            lengths, self.cfg.rollout.max_new_tokens, algo.overlong_buffer_tokens, algo.overlong_penalty_factor
        )
        return Experience(rollout, accuracy, accuracy + torch.tensor(shaping), rounds, generated)

    def enough_prompts(self, kept: int, wanted: int, rounds: int) -> bool:
        """Dynamic sampling's stop decision, the same on every rank: has every rank its share of the step?
        Past ``max_sampling_rounds`` rounds without it, every rank raises the same error."""
        usable, found = distributed.sum_counts([min(kept, wanted), kept])
        if usable == self.cfg.prompts_per_step:
            return True
        if rounds == self.cfg.algorithm.max_sampling_rounds:
            ranks = (
                f" (each of the {distributed.world_size()} ranks fills its own share of the batch; "
                f"{found} found in all)"
                if distributed.world_size() > 1
                else ""
            )
            raise RuntimeError(
                f"dynamic sampling found {usable} of {self.cfg.prompts_per_step} prompts with mixed rewards in "
                f"{rounds} rounds{ranks}; raise algorithm.max_sampling_rounds or turn algorithm.filter_groups off"
            )
        return False

    def sequences(self, rollout: Rollout, space: Space) -> Sequences:
        ctx = contexts(space, rollout.prompt_ids, rollout.group, self.context_id)
        share = space == Space.post and self.shares_prompts
        return pack(ctx, rollout.response_ids, self.tokenizer.pad_token_id, rollout.group if share else None)

    def score(self, model, seqs: Sequences) -> torch.Tensor:
        """log-probs of the rollout's responses under ``model``, at the sampling temperature."""
        return score_logprobs(model, seqs, self.cfg.optim.micro_batch_tokens, self.cfg.rollout.temperature)

    def prepare(self, phase: Phase, experience: Experience) -> tuple[UpdateBatch, Sequences, Advantages]:
        """Advantages and the objective's loss mask: everything the update needs (and, for a critic,
        the post-train sequences)."""
        algo = self.cfg.algorithm
        seqs = self.sequences(experience.rollout, phase.space)
        post = seqs if phase.space == Space.post else self.sequences(experience.rollout, Space.post)
        uses_algorithm = phase.follows_algorithm
        kl_in_reward = uses_algorithm and phase.regularised and algo.kl.placement == KLPlacement.reward
        policy_logp = {}  # log π_old per sequence set, scored at most once (PPO's KL and its ratio share it)

        def behaviour_logp(s: Sequences) -> torch.Tensor:
            if id(s) not in policy_logp:
                policy_logp[id(s)] = self.score(self.model, s)
            return policy_logp[id(s)]

        token_kl = None
        if kl_in_reward:
            kl = kl_penalty(behaviour_logp(post), self.score(self.reference, post), algo.kl.estimator)
            token_kl = kl * post.response_mask
        adv_in = AdvantageInputs(
            scores=experience.scores,
            group=torch.tensor(experience.rollout.group),
            mask=seqs.response_mask,
            token_kl=token_kl,
            values=self.critic.values(post) if uses_algorithm and self.critic else None,
        )
        adv = phase_advantages(phase, adv_in, algo)
        advantages, loss_mask = select_samples(phase, adv.advantages.float(), seqs.response_mask)
        if algo.mask_truncated:
            loss_mask = loss_mask * (~torch.tensor(experience.rollout.truncated)).float().unsqueeze(-1)
        ref_logp = None
        if phase.regularised and algo.kl.placement == KLPlacement.loss:
            ref_logp = self.score(self.reference, seqs)
        old_logp = behaviour_logp(seqs) if phase.reuses_rollout else None  # on-policy: the update's own, detached
        is_weight, is_metrics = self.correction(experience.rollout, post, behaviour_logp)
        adv = replace(adv, values=adv_in.values)
        batch = UpdateBatch(
            seqs, advantages, loss_mask, ref_logp, old_logp, self.cfg.rollout.temperature, is_weight, is_metrics
        )
        return batch, post, adv

    def correction(self, rollout: Rollout, post: Sequences, trainer_logp) -> tuple[torch.Tensor | None, dict]:
        """The rollout correction's weight of each response token and the sampler–trainer mismatch metrics
        (None and none while the correction is off and unmeasured). The sampler drew in post-train space,
        so the trainer's log-probs before the update (``trainer_logp``, PPO's π_old when it reuses the
        rollout) are scored there, whichever space the phase trains in."""
        c = self.cfg.rollout.correction
        if c.name == "none" and not c.measure:
            return None, {}
        if rollout.sample_logprobs is None:
            raise ValueError(
                f"rollout.correction: rollout.engine={self.cfg.rollout.engine!r} returns no log-probs of its "
                "samples; set rollout.correction.name=none and rollout.correction.measure=false"
            )
        sampler_logp = rollout_correction.padded(rollout.sample_logprobs, tuple(post.response_mask.shape))
        return rollout_correction.correct(trainer_logp(post), sampler_logp, post.response_mask, c)

    def reincarnate(self) -> None:
        """Policy Reincarnation: the warm-up policy becomes the new start (and KL anchor)."""
        rc = self.cfg.reincarnation
        if rc.reset_reference and self.reference is not None:  # sharded alike under fsdp2: shard to shard
            self.reference.load_state_dict(self.model.state_dict())
        if rc.reset_optimizer:
            self.optimizer.state.clear()

    # --- checkpoints -----------------------------------------------------------------------

    @property
    def checkpoint_dir(self) -> Path:
        return Path(self.cfg.output_dir) / "checkpoints"

    def state_dict(self, step: int) -> dict:
        """Called on every rank (gathering sharded state is a collective); complete on rank 0."""
        return {
            "step": step,
            "run_id": self.tracker.run_id,
            "rng": checkpoint.per_rank(checkpoint.rng_state()),
            "model": fsdp.model_state(self.model),
            "optimizer": fsdp.optimizer_state(self.model, self.optimizer),
            "reference": fsdp.model_state(self.reference) if self.reference is not None else None,
            "critic": self.critic.state_dict() if self.critic is not None else None,
            "prompts": distributed.check_same(self.prompts.state_dict(), "the prompt stream"),  # one for all ranks
            "last_eval": self.last_eval,
            "nonfinite_in_a_row": self.nonfinite_in_a_row,
            "cost": checkpoint.per_rank(self.cost.state_dict()),
        }

    def load_state_dict(self, state: dict) -> int:
        fsdp.load_model_state(self.model, state["model"])
        fsdp.load_optimizer_state(self.model, self.optimizer, state["optimizer"])
        if self.reference is not None:
            fsdp.load_model_state(self.reference, state["reference"])
        if self.critic is not None:
            self.critic.load_state_dict(state["critic"])
        self.prompts.load_state_dict(state["prompts"])
        self.last_eval, self.nonfinite_in_a_row = state["last_eval"], state["nonfinite_in_a_row"]
        self.cost.load_state_dict(checkpoint.own(state.get("cost")))  # checkpoints before cost logging have none
        checkpoint.set_rng_state(checkpoint.own(state["rng"]))
        self.engine.sync_weights()  # an engine with its own copy (vLLM) must sample the resumed policy
        return state["step"]

    def start(self) -> int:
        """Open the MLflow run — the checkpointed one when resuming — and return the first step to run."""
        state = checkpoint.load_latest(self.checkpoint_dir) if self.cfg.resume == "auto" else None
        tags = {
            "objective": self.cfg.objective.name,
            "algorithm": self.cfg.algorithm.name,
            "warmup_steps": str(self.cfg.warmup_steps),
            "device": str(self.device),
            "compute_dtype": compute_dtype(self.cfg.model, self.device) or self.cfg.model.dtype,  # model.autocast
        }
        # whether two runs should agree to the float (same weights, machine, packages, threads)
        tags |= run_fingerprint(
            self.model.config._name_or_path,  # the folder or Hub id it was loaded from
            getattr(self.model.config, "_commit_hash", None),
        )
        if state is None:
            self.tracker.start(self.resolved, tags)
            if distributed.is_main():  # the training set and every eval set, with source and digest
                self.tracker.log_datasets(dataset_inputs(self.splits, self.resolved))
            return 0
        step = self.load_state_dict(state)
        self.tracker.start(self.resolved, tags, run_id=state["run_id"])
        log.info("resumed from %s at step %d (MLflow run %s)", self.checkpoint_dir, step, state["run_id"])
        return step

    def save_checkpoint(self, step: int) -> None:
        """Every rank gathers, rank 0 writes."""
        state = self.state_dict(step)
        if distributed.is_main():
            checkpoint.save(self.checkpoint_dir, step, state, self.cfg.checkpoint.keep_last)

    def save_policy(self, save_dir: Path) -> None:
        """The final policy as a transformers folder: every rank gathers, rank 0 writes."""
        state = fsdp.model_state(self.model)
        if distributed.is_main():
            self.model.save_pretrained(save_dir, state_dict=state)
            self.tokenizer.save_pretrained(save_dir)
            self.tracker.log_policy(save_dir, step=self.cfg.total_steps)  # runs:/<run_id>/policy for evaluate.py

    # --- the loop -------------------------------------------------------------------------

    def step(self, step: int) -> dict[str, float]:
        cfg = self.cfg
        phase = phase_at(step, cfg)
        clock = Stopwatch()
        with self.compute(), self.rollout_weights():
            experience = self.collect()  # rollout → reward
        clock.lap("rollout_reward")
        with self.compute():
            batch, post, adv = self.prepare(phase, experience)  # advantage → objective mask
        clock.lap("advantage")
        parts = mini_batches(
            experience.rollout.group,
            distributed.mini_batch_count(phase.mini_batches, cfg.prompts_per_step),  # the same on every rank
            phase.epochs,
            torch.Generator().manual_seed(cfg.seed * 1_000_003 + step),
        )  # same after a resume
        stats, _ = policy_updates(
            self.model,
            self.optimizer,
            batch,
            parts,
            phase,
            cfg.algorithm,
            cfg.optim,
            cfg.rollout.max_new_tokens,
            self.compute,
        )  # loss → step, per mini-batch, each in its own compute block
        if self.critic is not None and adv.returns is not None:  # PPO: fit V to the returns, same mini-batches
            assert adv.values is not None  # an estimator that sets returns sets the values they came from
            stats |= self.critic.fit(post, adv.returns, adv.values, parts)
        self.engine.sync_weights()
        clock.lap("update")
        return distributed.reduce_metrics(self.step_metrics(phase, experience, batch, stats, clock))

    def step_metrics(self, phase, experience: Experience, batch: UpdateBatch, stats: dict, clock) -> dict[str, float]:
        lengths = batch.seqs.response_mask.sum(-1)
        group = torch.tensor(experience.rollout.group)
        metrics = {
            f"train/{k}" if "/" not in k else k: v
            for k, v in stats.items()
            if k not in ("trained_tokens", "update_tokens")
        }
        metrics |= self.cost.add(
            {
                "generated_tokens": experience.generated_tokens,
                "trained_tokens": stats["trained_tokens"],
                "update_tokens": stats["update_tokens"],
                "train_seconds": clock.total,
            }
        )
        metrics |= {
            "train/accuracy": float(experience.accuracy.mean()),
            "train/reward": float(experience.scores.mean()),
            "train/kept_samples": float((batch.loss_mask.sum(-1) > 0).float().mean()),
            "train/response_length": float(lengths.mean()),
            "train/truncated_frac": float(np.mean(experience.rollout.truncated)),
            "train/sampling_rounds": float(experience.sampling_rounds),
            "train/warmup": float(phase.name == "warmup"),
            "time/tokens_per_s": float(lengths.sum()) / clock.total,
        }
        metrics |= {f"time/{name}_s": seconds for name, seconds in clock.laps.items()}
        metrics |= {"time/step_s": clock.total}
        metrics |= {f"train/{k}": v for k, v in group_outcomes(experience.accuracy, group).items()}
        metrics |= batch.is_metrics  # the sampler–trainer mismatch (train/rollout_is/*), when measured
        metrics |= behaviour_metrics(
            experience.rollout.texts
        )  # reasoning behaviours per response (prerl/eval/behaviours.py)
        return metrics

    def evaluate(self, step: int) -> dict[str, float]:
        """Each rank samples its shard of every set's problems; rank 0 gathers them, logs and returns the
        metrics (the other ranks return only their ``time/eval_s``)."""
        ev, out, start = self.cfg.eval, {}, time.perf_counter()
        for name in ev.sets:
            split = self.splits[name]
            rows = distributed.shard(list(range(len(split))))  # this rank's problems, all K samples of each
            with self.compute(), self.rollout_weights():
                part = evaluate_problems(
                    self.engine,
                    name,
                    split["prompt_ids"],
                    rows,
                    ev.samples_per_prompt,
                    ev.temperature,
                    ev.top_p,
                    ev.max_new_tokens,
                    self.graders[name],
                )
            result = gather_result(part)  # every problem, in order, on rank 0
            if result is None:
                continue
            out.update({f"eval/{k}": v for k, v in result.metrics().items()})
            self.tracker.log_dict(result.per_problem(problem_ids(split)), f"per_problem/{name}_step{step:05d}.json")
            if self.cfg.tracking.log_samples:
                n = min(self.cfg.tracking.log_samples, len(result.responses))
                K = ev.samples_per_prompt
                self.tracker.log_table(
                    {
                        "step": [step] * n,
                        "question": [split["messages"][i // K][-1]["content"] for i in range(n)],
                        "answer": [split["answer"][i // K] for i in range(n)],
                        "response": result.responses[:n],
                        "correct": result.correct.reshape(-1)[:n].tolist(),
                    },
                    f"samples/{name}_step{step:05d}.json",
                )
        return out | {"time/eval_s": time.perf_counter() - start}

    def check_finite(self, metrics: dict[str, float]) -> None:
        """Count skipped (NaN/inf) updates in a row and stop the run past the configured limit."""
        self.nonfinite_in_a_row = self.nonfinite_in_a_row + 1 if metrics["train/skipped_update"] else 0
        if self.nonfinite_in_a_row > self.cfg.optim.max_nonfinite_updates:
            raise RuntimeError(
                f"{self.nonfinite_in_a_row} updates in a row had a NaN/inf loss or gradient; "
                "stopping (optim.max_nonfinite_updates). The weights are those before them."
            )

    def should_evaluate(self, step: int) -> bool:
        every = self.cfg.eval.every_steps
        return step == 0 or step == self.cfg.total_steps or (every > 0 and step % every == 0)


def eval_summary(metrics: dict[str, float]) -> str:
    """The log line of an evaluation: Avg@K of every set."""
    return ", ".join(f"{k.removeprefix('eval/')} {v:.3f}" for k, v in metrics.items() if "/avg_at_" in k)


def train(cfg: TrainConfig, resolved: dict | None = None) -> dict[str, float]:
    """Run the experiment ``cfg`` (or continue it from its newest checkpoint); return the final eval."""
    check_choices(cfg)  # before any model, data or store
    resolved = (
        resolved
        if resolved is not None
        else cast(dict, OmegaConf.to_container(OmegaConf.structured(cfg), resolve=True))
    )
    distributed.init()  # under torchrun: join the group; one output folder (rank 0's) for all ranks
    distributed.check_world(cfg.prompts_per_step)
    cfg.output_dir = distributed.broadcast(cfg.output_dir)
    experiment = Experiment(cfg, resolved)
    first = experiment.start()
    status = "FAILED"
    try:
        if first == 0 and experiment.should_evaluate(0):
            experiment.last_eval = experiment.evaluate(0)
            experiment.tracker.log(experiment.last_eval, 0)
            log.info("step 0 eval %s", eval_summary(experiment.last_eval))
        for step in range(first, cfg.total_steps):
            if step == cfg.warmup_steps and step > 0:
                experiment.reincarnate()
            metrics = experiment.step(step)  # rollout → reward → advantage → mask → loss → step
            experiment.check_finite(metrics)
            done = step + 1
            if experiment.should_evaluate(done):
                experiment.last_eval = experiment.evaluate(done)
                metrics |= experiment.last_eval
                log.info("step %d eval %s", done, eval_summary(experiment.last_eval))
            experiment.tracker.log(metrics, done)  # one batch per step: a resumed run never logs a step twice
            log.info(
                "step %d/%d accuracy %.3f loss %.4f (%s) %.1fs",
                done,
                cfg.total_steps,
                metrics["train/accuracy"],
                metrics["train/loss"],
                "warm-up" if metrics["train/warmup"] else "main",
                metrics["time/step_s"],
            )
            every = cfg.checkpoint.every_steps
            if done == cfg.total_steps or (every and done % every == 0):
                experiment.save_checkpoint(done)
        experiment.save_policy(Path(cfg.output_dir) / "final_policy")
        status = "FINISHED"
    finally:
        experiment.tracker.finish(status)
    distributed.shutdown()  # only after a clean finish: a rank that failed leaves its peers to torchrun
    return experiment.last_eval


def sweep_value(cfg: TrainConfig, metrics: dict[str, float]) -> float:
    """The number a sweeper optimises (``run_info.sweep_metric``): final Avg@K on the first eval set."""
    return metrics.get(sweep_metric(cfg.eval), float("nan"))
