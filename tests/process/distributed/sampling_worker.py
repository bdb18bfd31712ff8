"""Dynamic sampling, prompt streams, checkpoints and evaluation on one or two ranks (``torchrun``, gloo).

Usage: ``sampling_worker.py MODE WORKDIR CACHE_DIR [TP]``; each rank writes what it saw to
``WORKDIR/MODE.rank<r>.pt`` for ``tests/process/distributed/test_multirank.py``. Not collected by pytest.

- ``dapo``: two DAPO steps in which rank 0 fills its share of the batch in the first sampling round
  and rank 1 needs three (``ScriptedEngine`` decides which prompts have mixed rewards, from the prompt
  stream itself); then a checkpoint, and a second experiment that resumes from it.
- ``dapo_limit``: the same with ``algorithm.max_sampling_rounds=2``: every rank must raise.
- ``eval``: ``Experiment.evaluate`` through the vLLM engine's prompt bookkeeping (``VLLMEngine.generate``
  and its tensor-parallel gather, with a fake ``vllm.LLM``); ``TP`` is the tensor-parallel size and
  ``PROBLEMS`` the size of the test set.
- ``seeds``: what the global random generators give a registered engine (``SeedProbe``) when it is built
  and when it generates, with ``TP`` ranks per engine.
- ``vllm_fsdp2``: a training step and an evaluation under fsdp2 with the fake ``vllm.LLM``: whether the
  policy stays sharded while the engine generates, and how its weights reach the engine.
"""

import copy
import random
import sys
import types
import weakref
import zlib
from datetime import timedelta
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch.distributed.tensor import DTensor

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # tests/helpers.py

from helpers import compose_config, to_run

from prerl.data.eval_sets import references
from prerl.parallel import distributed, fsdp
from prerl.rollout.base import Rollout
from prerl.train import trainer


def correct_sample(prompt: list[int], index: int) -> bool:
    """Whether sample ``index`` of a prompt is right: a fixed function of the two, so every rank, batch
    and process layout gives a problem the same samples."""
    return zlib.crc32(bytes(str((prompt, index)), "utf8")) % 3 != 0


class ScriptedEngine:
    """Answers with a problem's reference (right) or a wrong boxed number, as ``right(prompt, i)`` says."""

    def __init__(self, tokenizer, splits, right):
        self.tokenizer, self.right, self.calls = tokenizer, right, 0
        self.reference = {tuple(p): r for s in splits for p, r in zip(s["prompt_ids"], references(s))}

    def sync_weights(self) -> None:
        pass

    def generate(self, prompt_ids, n, temperature, top_p, max_new_tokens) -> Rollout:
        self.calls += 1
        texts = [
            self.reference[tuple(p)] if self.right(p, i) else "The final answer is $\\boxed{-1}$."
            for p in prompt_ids
            for i in range(n)
        ]
        eos = self.tokenizer.eos_token_id
        responses = [self.tokenizer(t, add_special_tokens=False)["input_ids"] + [eos] for t in texts]
        return Rollout(
            list(prompt_ids),
            responses,
            [g for g in range(len(prompt_ids)) for _ in range(n)],
            [False] * len(texts),
            texts,
        )


def mixed_rows(stream: trainer.PromptStream, steps: int) -> set[int]:
    """Training rows to give mixed rewards (all others: every sample wrong) so that, on two ranks with
    two prompts each per step, rank 0 has its two in the first round of each step and rank 1 finds one
    in the second round and one in the third."""
    stream, rows, drawn = copy.deepcopy(stream), set(), []
    for _ in range(steps):
        batches = [next(stream) for _ in range(3)]  # ranks' shares: [0:2] and [2:4] of each
        rows |= {*batches[0][:2], batches[1][2], batches[2][2]}
        drawn += [r for b in batches for r in b]
    assert len(set(drawn)) == len(drawn), "the scenario needs distinct rows: draws within one epoch"
    return rows


def experiment(workdir: Path, cache_dir: str, overrides: list[str]) -> trainer.Experiment:
    cfg, resolved = to_run(compose_config(overrides, workdir, cache_dir))
    exp = trainer.Experiment(cfg, resolved)
    exp.start()
    return exp


def run_dapo(workdir: Path, cache_dir: str, max_rounds: int) -> dict:
    overrides = [
        "algorithm=dapo",
        "warmup_steps=0",
        "prompts_per_step=4",
        "rollout.samples_per_prompt=4",
        f"algorithm.max_sampling_rounds={max_rounds}",
        "eval.every_steps=0",
    ]
    exp = experiment(workdir, cache_dir, overrides)
    train = exp.splits["train"]
    row_of = {tuple(p): i for i, p in enumerate(train["prompt_ids"])}
    mixed = mixed_rows(exp.prompts, steps=2)
    exp.engine = ScriptedEngine(exp.tokenizer, [train], lambda p, i: row_of[tuple(p)] in mixed and i % 2 == 0)
    seen = {"rounds": [], "error": None}
    collect = exp.collect

    def recorded_collect():
        experience = collect()
        seen["rounds"].append(experience.sampling_rounds)
        return experience

    exp.collect = recorded_collect
    try:
        for step in range(2):
            exp.step(step)
    except RuntimeError as err:
        seen["error"] = str(err)
    seen["generate_calls"] = exp.engine.calls
    seen["stream"] = exp.prompts.state_dict()
    if seen["error"] is None:
        seen["rng"], seen["cost"] = torch.get_rng_state(), dict(exp.cost.totals)
        exp.save_checkpoint(2)
        exp.tracker.finish()
        resumed = experiment(workdir, cache_dir, overrides)  # resume=auto: from the checkpoint just written
        seen["resumed_stream"] = resumed.prompts.state_dict()
        seen["resumed_rng"], seen["resumed_cost"] = torch.get_rng_state(), dict(resumed.cost.totals)
        resumed.tracker.finish()
    else:
        exp.tracker.finish("FAILED")
    return seen


def fake_vllm(tp: int, tokenizer, splits, policy=None):
    """A ``VLLMEngine`` whose ``LLM`` is a stand-in answering as ``correct_sample`` (a prompt of no set, the
    engine's dummy request, gets EOS). It records every prompt it generated for, whether ``policy`` was
    sharded meanwhile, and each weight push. Its engines, one per tensor-parallel group, step together as
    vLLM's data-parallel engines do (``steps``). The engine's own gather and bookkeeping run as they are."""
    from prerl.rollout.vllm import VLLMEngine

    sys.modules["vllm"] = types.SimpleNamespace(SamplingParams=lambda **kw: types.SimpleNamespace(**kw))
    scripted = ScriptedEngine(tokenizer, splits, correct_sample)
    world = distributed.world_size()
    # the data-parallel group: the engines' ranks of equal place in their tensor-parallel groups; a peer
    # that never joins fails the step after 60 s instead of hanging the test
    steps_group = (
        dist.new_subgroups_by_enumeration(
            [list(range(i, world, tp)) for i in range(tp)], timeout=timedelta(seconds=60)
        )[0]
        if world > 1
        else None
    )

    class LLM:
        def __init__(self):
            self.generated, self.sharded, self.pushes, self.loaded = [], [], [], {}

        def generate(self, prompts, params, use_tqdm=False):
            ids = [p["prompt_token_ids"] for p in prompts]
            self.generated += ids
            self.sharded.append(None if policy is None else all(isinstance(p, DTensor) for p in policy.parameters()))
            self.steps(work=len(ids))
            known = [p for p in ids if tuple(p) in scripted.reference]
            out, n = scripted.generate(known, params.n, 1.0, 1.0, params.max_tokens), params.n
            responses = iter(out.response_ids)

            def completion(index: int, token_ids: list[int]):  # vLLM's CompletionOutput, logprobs=0
                logprobs = [{t: types.SimpleNamespace(logprob=-1.0)} for t in token_ids]  # the drawn token's
                return types.SimpleNamespace(index=index, token_ids=token_ids, logprobs=logprobs)

            return [
                types.SimpleNamespace(
                    outputs=[
                        completion(i, next(responses) if tuple(p) in scripted.reference else [engine.eos_id])
                        for i in range(n)
                    ][::-1]  # the engine sorts by index
                )
                for p in ids
            ]

        def steps(self, work: int) -> None:
            """vLLM 0.32 under the external launcher: before every engine step the data-parallel engines
            all-reduce whether any still has work (``LLMEngine.has_unfinished_requests``); one step per prompt."""
            while steps_group is not None:
                busy = torch.tensor([int(work > 0)])
                dist.all_reduce(busy, op=dist.ReduceOp.MAX, group=steps_group)
                if not busy:
                    return
                work -= 1

        def collective_rpc(self, method, kwargs=None):
            """``reload_weights``: copies the weights, recording the container and the most tensors it had been
            handed that were still alive when it was handed another."""
            assert method == "reload_weights"
            weights, handed, most_alive = kwargs["weights_iterator"], [], 0
            for name, tensor in weights:
                most_alive = max(most_alive, sum(ref() is not None for ref in handed))
                handed.append(weakref.ref(tensor))
                self.loaded[name] = tensor.detach().clone()
                del tensor
            self.pushes.append({"container": type(weights).__name__, "most_alive": most_alive})
            return [None]

        def reset_prefix_cache(self):
            pass

    engine = object.__new__(VLLMEngine)  # skips the real engine's start-up: no vLLM here
    engine.tokenizer, engine.eos_id, engine.tp, engine.llm = tokenizer, tokenizer.eos_token_id, tp, LLM()
    engine.tp_group = distributed.consecutive_subgroup(tp) if tp > 1 else None
    engine.sleeps = engine.asleep = False
    engine.serve_threads = torch.get_num_threads()
    if policy is not None:  # the weight push, as the engine's start-up sets it up
        head = policy.get_output_embeddings()
        engine.policy, engine.reloads = policy, True
        engine.head_name = next(name for name, m in policy.named_modules() if m is head) + ".weight"
        engine.tied = bool(getattr(policy.config, "tie_word_embeddings", False))
    return engine


def run_eval(workdir: Path, cache_dir: str, tp: int, problems: int) -> dict:
    # 7 problems: ranks get 3 and 4; K = 3 samples each
    exp = experiment(
        workdir, cache_dir, [f"data.test_problems={problems}", "eval.samples_per_prompt=3", "tracking.log_samples=0"]
    )
    exp.engine = fake_vllm(tp, exp.tokenizer, [exp.splits[name] for name in exp.cfg.eval.sets])
    metrics = exp.evaluate(0)
    exp.tracker.finish()
    return {
        "metrics": metrics,
        "generated": exp.engine.llm.generated,
        "run_id": exp.tracker.run_id,
        "prompts": [exp.splits[name]["prompt_ids"] for name in exp.cfg.eval.sets],
    }


def draws() -> dict:
    """A few numbers from each global generator: equal dicts, equal generator states."""
    return {
        "python": random.random(),
        "numpy": np.random.randint(2**31, size=4).tolist(),
        "torch": torch.rand(4).tolist(),
    }


class SeedProbe:
    """A registered rollout engine spanning ``rollout.vllm.tensor_parallel_size`` ranks (as vLLM's does) that
    records ``draws()`` when it is built and at each generate call; it answers every prompt wrongly."""

    @staticmethod
    def ranks_per_engine(cfg) -> int:
        return cfg.vllm.tensor_parallel_size

    def __init__(self, model, tokenizer, cfg):
        self.draws = [draws()]
        self.scripted = ScriptedEngine(tokenizer, [], lambda prompt, i: False)

    def sync_weights(self) -> None:
        pass

    def generate(self, prompt_ids, n, temperature, top_p, max_new_tokens) -> Rollout:
        self.draws.append(draws())
        return self.scripted.generate(prompt_ids, n, temperature, top_p, max_new_tokens)


def run_seeds(workdir: Path, cache_dir: str, tp: int) -> dict:
    from prerl.rollout import register_engine

    register_engine("seed_probe", "sampling_worker:SeedProbe")
    exp = experiment(workdir, cache_dir, ["rollout.engine=seed_probe", f"rollout.vllm.tensor_parallel_size={tp}"])
    exp.collect()
    exp.tracker.finish()
    return {"draws": exp.engine.draws}


def run_vllm_fsdp2(workdir: Path, cache_dir: str) -> dict:
    overrides = ["distributed.strategy=fsdp2", "warmup_steps=0", "eval.samples_per_prompt=3", "tracking.log_samples=0"]
    exp = experiment(workdir, cache_dir, overrides)
    sets = [exp.splits["train"], *(exp.splits[name] for name in exp.cfg.eval.sets)]
    exp.engine = fake_vllm(1, exp.tokenizer, sets, policy=exp.model)
    exp.engine.sync_weights()  # the start-up's push (this engine came after the real start-up)
    exp.step(0)  # rollout → update → push
    exp.evaluate(1)
    exp.tracker.finish()
    state = fsdp.model_state(exp.model)  # whole on rank 0 (a collective)
    llm = exp.engine.llm
    loaded_is_policy = all(torch.equal(llm.loaded[k], w) for k, w in state.items() if k in llm.loaded)
    return {
        "sharded": llm.sharded,
        "pushes": llm.pushes,
        "loaded": sorted(llm.loaded),
        "state": sorted(state),
        "loaded_is_policy": loaded_is_policy,
    }


def main(mode: str, workdir: str, cache_dir: str, tp: str = "1", problems: str = "7") -> None:
    distributed.init()
    workdir = Path(workdir)
    if mode == "eval":
        seen = run_eval(workdir, cache_dir, int(tp), int(problems))
    elif mode == "seeds":
        seen = run_seeds(workdir, cache_dir, int(tp))
    elif mode == "vllm_fsdp2":
        seen = run_vllm_fsdp2(workdir, cache_dir)
    else:
        assert distributed.world_size() == 2, "the sampling scenario is written for two ranks"
        seen = run_dapo(workdir, cache_dir, max_rounds=2 if mode == "dapo_limit" else 10)
    torch.save(seen, workdir / f"{mode}.rank{distributed.rank()}.pt")
    distributed.shutdown()


if __name__ == "__main__":
    main(*sys.argv[1:])
