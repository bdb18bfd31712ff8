"""``evaluate.py``: Avg@K and Pass@k of one policy on the configured eval sets, logged to MLflow.

The policy is ``model.path`` (a saved checkpoint folder such as ``outputs/.../final_policy``, or a Hub
name) or the mini model. Every set is sampled K times per problem in chunks (with a progress bar),
scored by its records' scorer kind, and logged as ``eval/<set>/avg_at_K`` and ``eval/<set>/pass_at_k``;
``eval/average/*`` is the unweighted mean over the sets, and ``eval/<set>/samples_per_s`` the
throughput of sampling plus scoring.
"""

from __future__ import annotations

import logging
import time

import numpy as np
from tqdm import tqdm

from prerl.config.schema import TrainConfig
from prerl.data import splits as data_lib
from prerl.data.eval_sets import eval_sets, references
from prerl.eval.evaluator import EvalResult, concat_results, evaluate_problems, gather_result, k_values, problem_ids
from prerl.launch.choices import check_choices
from prerl.models.loading import autocast, load_policy, resolve_device
from prerl.parallel import distributed
from prerl.rollout import RunNeeds, make_engine, ranks_per_engine
from prerl.scoring import Grader, settings_from
from prerl.tracking.tracker import NullTracker, Tracker

log = logging.getLogger(__name__)


def evaluate_set(engine, name: str, dataset, cfg: TrainConfig) -> EvalResult | None:
    """All problems of ``dataset`` (rendered: ``prompt_ids``), K samples each, in chunks of ``rollout.batch_samples``.

    Under ``torchrun`` each rank samples its shard of the problems and rank 0 gets the whole result, in
    problem order (``None`` on the other ranks). Every rank runs the same number of chunks (the largest
    shard's; a rank may run an empty one): a vLLM tensor-parallel group generates each chunk together.
    """
    ev, K = cfg.eval, cfg.eval.samples_per_prompt
    prompt_ids, grader = dataset["prompt_ids"], Grader.of(dataset, settings_from(ev))
    rows = distributed.shard(list(range(len(prompt_ids))))
    if hasattr(engine, "set_references"):  # the oracle engines answer with reference responses
        engine.set_references(prompt_ids, references(dataset), seed=cfg.seed, first=rows[0] if rows else 0)
    per_chunk = max(1, cfg.rollout.batch_samples // K)
    chunks = range(0, distributed.largest_local_count(len(prompt_ids)), per_chunk)
    parts = [
        evaluate_problems(
            engine,
            name,
            prompt_ids,
            rows[start : start + per_chunk],
            K,
            ev.temperature,
            ev.top_p,
            ev.max_new_tokens,
            grader,
        )
        for start in tqdm(chunks, desc=name, unit="chunk", disable=not distributed.is_main())
    ]
    return gather_result(concat_results(parts))


def average(results: list[EvalResult], K: int) -> dict[str, float]:
    """Unweighted mean over sets of Avg@K and each Pass@k."""
    out = {f"average/avg_at_{K}": float(np.mean([r.avg for r in results]))}
    out.update({f"average/pass_at_{k}": float(np.mean([r.pass_at(k) for r in results])) for k in k_values(K)})
    return out


def run(cfg: TrainConfig, resolved: dict) -> dict[str, float]:
    """Under ``torchrun`` each rank samples its share of every set; rank 0 logs and returns the metrics
    (the other ranks return an empty dict)."""
    check_choices(cfg)  # before the model loads
    distributed.init()
    distributed.seed_process(cfg.seed, ranks_per_engine(cfg.rollout))  # before the engine (trainer.Experiment)
    device = resolve_device(cfg.device)
    model, tokenizer = load_policy(cfg.model, cfg.cache_dir, device)
    sets = eval_sets(cfg.eval, lambda: data_lib.load_splits(cfg.data))
    engine = make_engine(cfg.rollout, model, tokenizer, RunNeeds.of(cfg, device))
    tracker = Tracker(cfg.tracking) if distributed.is_main() else NullTracker()
    tracker.start(
        resolved,
        tags={
            "job": "evaluate",
            "model": cfg.model.name(),
            "rollout": cfg.rollout.engine,
        },
    )
    metrics: dict[str, float] = {}
    results, status = [], "FAILED"
    try:
        for name, dataset in sets.items():
            dataset = data_lib.render(dataset, tokenizer, cfg.model.chat_template_kwargs)
            start = time.perf_counter()
            with autocast(cfg.model, device):  # the compute dtype, as training's evaluations (model.autocast)
                result = evaluate_set(engine, name, dataset, cfg)
            if result is None:  # not rank 0
                continue
            seconds = time.perf_counter() - start
            results.append(result)
            set_metrics = result.metrics() | {
                f"{name}/samples_per_s": result.correct.size / seconds,
                f"{name}/problems": float(len(dataset)),
            }
            metrics.update({f"eval/{k}": v for k, v in set_metrics.items()})
            tracker.log({f"eval/{k}": v for k, v in set_metrics.items()}, step=0)
            log_samples(tracker, name, dataset, result, cfg)
            tracker.log_dict(result.per_problem(problem_ids(dataset)), f"per_problem/{name}.json")
            log.info(
                "%s: avg@%d %.4f, %d problems, %.1f samples/s",
                name,
                result.K,
                result.avg,
                len(dataset),
                result.correct.size / seconds,
            )
        if results:
            avg = {f"eval/{k}": v for k, v in average(results, cfg.eval.samples_per_prompt).items()}
            metrics.update(avg)
            tracker.log(avg, step=0)
        status = "FINISHED"
    finally:
        tracker.finish(status)
    distributed.shutdown()  # only after a clean finish, as train()
    return metrics


def log_samples(tracker: Tracker, name: str, dataset, result: EvalResult, cfg: TrainConfig) -> None:
    n = min(cfg.tracking.log_samples, len(result.responses))
    if n == 0:
        return
    K = result.K
    tracker.log_table(
        {
            "id": [dataset["id"][i // K] if "id" in dataset.column_names else str(i // K) for i in range(n)],
            "answer": [dataset["answer"][i // K] for i in range(n)],
            "response": result.responses[:n],
            "correct": result.correct.reshape(-1)[:n].tolist(),
        },
        f"samples/{name}.json",
    )
