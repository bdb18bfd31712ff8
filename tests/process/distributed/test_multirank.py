"""What ranks must agree on: dynamic-sampling rounds (and their error), the prompt stream a checkpoint
restores, evaluation split over ranks and gathered once, the random generators of one rollout engine's
ranks, and how vLLM engines step and get their weights under fsdp2 (two gloo processes against one)."""

import json
import sys

import numpy as np
import pytest
import torch
from mlflow.tracking import MlflowClient
from test_data_parallel import ROOT, TORCHRUN, run

from prerl.config.schema import MiniModelConfig
from prerl.eval.evaluator import EvalResult, concat_results
from prerl.models.mini_model import ensure_base_model
from prerl.rollout.oracle import OracleEngine
from prerl.train import checkpoint

WORKER = str(ROOT / "tests" / "process" / "distributed" / "sampling_worker.py")


def ranks(workdir, mode: str, world: int = 2) -> list[dict]:
    return [torch.load(workdir / f"{mode}.rank{r}.pt", weights_only=False) for r in range(world)]


@pytest.fixture(scope="module")
def micro(cache_dir):
    ensure_base_model(MiniModelConfig.micro(), cache_dir, progress=False)  # not built by two ranks at once
    return cache_dir


def test_dapo_ranks_sample_the_same_rounds_and_resume_the_same_stream(tmp_path, micro):
    """Rank 0 has its two informative prompts after one round, rank 1 after three: both must sample three
    rounds in each step (rank 0 alone would stop after one, and its prompt stream would fall behind)."""
    run(TORCHRUN + [WORKER, "dapo", str(tmp_path), micro])
    zero, one = ranks(tmp_path, "dapo")
    assert zero["error"] is None and one["error"] is None
    assert zero["rounds"] == one["rounds"] == [3, 3]
    assert zero["generate_calls"] == one["generate_calls"] == 6  # every rank sampled every round
    assert zero["stream"] == one["stream"]  # same position: 2 steps x 3 rounds of 4 prompts drawn
    assert zero["stream"]["pos"] == 24
    for rank in (zero, one):  # what the checkpoint restores is what each rank had
        assert rank["resumed_stream"] == rank["stream"]
        assert torch.equal(rank["resumed_rng"], rank["rng"])  # each rank its own random state, not rank 0's
        assert rank["resumed_cost"] == rank["cost"]
    assert not torch.equal(zero["rng"], one["rng"])  # the ranks' states do differ: the check above can fail
    assert zero["cost"]["generated_tokens"] != one["cost"]["generated_tokens"]


def test_dapo_sampling_limit_stops_every_rank_together(tmp_path, micro):
    """At max_sampling_rounds=2 rank 0 has its share and rank 1 has not: both raise the same error after
    the same two rounds (a rank that went on to the update would wait for its peer forever)."""
    run(TORCHRUN + [WORKER, "dapo_limit", str(tmp_path), micro], timeout=240)
    zero, one = ranks(tmp_path, "dapo_limit")
    assert zero["error"] == one["error"]
    assert "dynamic sampling found 3 of 4 prompts with mixed rewards in 2 rounds" in zero["error"]
    assert zero["rounds"] == one["rounds"] == []  # no step completed
    assert zero["generate_calls"] == one["generate_calls"] == 2
    assert zero["stream"] == one["stream"]


def per_problem(workdir, run_id: str, name: str) -> dict:
    client = MlflowClient(f"sqlite:///{workdir / 'mlflow.db'}")
    path = client.download_artifacts(run_id, f"per_problem/{name}_step00000.json", str(workdir))
    return json.loads(open(path).read())


def test_evaluation_on_two_ranks_equals_one(tmp_path, micro):
    """Each problem's K samples are a fixed function of its prompt and sample index (the worker's fake
    vLLM), so any split of the problems over ranks must give one process's per-problem counts exactly:
    a lost, doubled or reordered problem changes them. Two ranks form one tensor-parallel group, whose
    engine gathers both ranks' prompts: each problem must be generated once, not once per rank."""
    one_dir, two_dir = tmp_path / "one", tmp_path / "two"
    one_dir.mkdir(), two_dir.mkdir()
    run([sys.executable, WORKER, "eval", str(one_dir), micro, "1"])
    run(TORCHRUN + [WORKER, "eval", str(two_dir), micro, "2"])
    (one,), (zero, other) = ranks(one_dir, "eval", world=1), ranks(two_dir, "eval")
    prompts = [p for split in one["prompts"] for p in split]
    assert one["generated"] == prompts
    assert zero["generated"] == other["generated"] == prompts  # once per tensor-parallel group, in order
    assert set(other["metrics"]) == {"time/eval_s"}  # only rank 0 holds the gathered result
    metrics = {k: v for k, v in zero["metrics"].items() if not k.startswith("time/")}
    assert metrics == {k: v for k, v in one["metrics"].items() if not k.startswith("time/")}
    assert 0 < metrics["eval/test/avg_at_3"] < 1  # mixed counts, so the order of problems shows
    for name in ("test", "ood"):
        expected = per_problem(one_dir, one["run_id"], name)
        assert per_problem(two_dir, zero["run_id"], name) == expected
        assert len(set(expected["correct"])) > 1, expected


def test_evaluation_with_fewer_problems_than_engines_finishes(tmp_path, micro):
    """Two data-parallel vLLM engines (tensor-parallel size 1) and a test set of one problem: rank 1 has
    none, but vLLM's data-parallel engines agree at every step on whether any still has work, so an engine
    that skipped the call would leave the other waiting (the worker's fake steps so, and gives up after
    60 s). Rank 1's engine steps on a dummy request; the results are those of one process."""
    one_dir, two_dir = tmp_path / "one", tmp_path / "two"
    one_dir.mkdir(), two_dir.mkdir()
    run([sys.executable, WORKER, "eval", str(one_dir), micro, "1", "1"])
    run(TORCHRUN + [WORKER, "eval", str(two_dir), micro, "1", "1"], timeout=300)
    (one,), (zero, _) = ranks(one_dir, "eval", world=1), ranks(two_dir, "eval")
    metrics = {k: v for k, v in zero["metrics"].items() if not k.startswith("time/")}
    assert metrics == {k: v for k, v in one["metrics"].items() if not k.startswith("time/")}
    for name in ("test", "ood"):
        assert per_problem(two_dir, zero["run_id"], name) == per_problem(one_dir, one["run_id"], name)
    assert len(per_problem(one_dir, one["run_id"], "test")["correct"]) == 1


def test_ranks_of_one_engine_draw_alike_and_engines_apart(tmp_path, micro):
    """Python's, numpy's and torch's generators, as an engine sees them when it is built and when it
    samples: the same on the two ranks of one tensor-parallel engine (vLLM samples each token on every
    rank of it), and different for two engines (vLLM 0.32 draws each request's seed from numpy)."""
    seen = {}
    for tp in (2, 1):
        workdir = tmp_path / f"tp{tp}"
        workdir.mkdir()
        run(TORCHRUN + [WORKER, "seeds", str(workdir), micro, str(tp)], timeout=300)
        seen[tp] = ranks(workdir, "seeds")
    zero, one = seen[2]
    assert len(zero["draws"]) == 2  # at start-up and at the rollout
    assert zero["draws"] == one["draws"]
    zero, one = seen[1]
    for at_zero, at_one in zip(zero["draws"], one["draws"]):
        assert all(at_zero[generator] != at_one[generator] for generator in at_zero), (at_zero, at_one)


def test_fsdp2_policy_stays_sharded_for_vllm_and_streams_its_weights(tmp_path, micro):
    """Under fsdp2 the vLLM engine needs no whole policy while it generates (it holds its own weights), and
    each weight push hands it one gathered tensor at a time: no moment holds the whole model gathered."""
    run(TORCHRUN + [WORKER, "vllm_fsdp2", str(tmp_path), micro], timeout=300)
    zero, one = ranks(tmp_path, "vllm_fsdp2")
    for rank in (zero, one):
        assert len(rank["sharded"]) == 3 and all(rank["sharded"])  # the step's rollout and two eval sets
        assert rank["pushes"] == [{"container": "generator", "most_alive": 0}] * 2  # start-up, after the step
    assert zero["loaded"] == zero["state"] and zero["loaded_is_policy"]  # every weight, as updated


# --- the bookkeeping underneath, in one process ----------------------------------------------------


def test_shards_of_a_set_concatenate_to_the_whole():
    """``concat_results`` of consecutive shards (what rank 0 gathers) is the result of the whole set."""
    correct = np.array([[1, 0, 1], [0, 0, 0], [1, 1, 1], [0, 1, 0], [1, 0, 0]], dtype=float)
    texts = [f"p{i}s{k}" for i in range(5) for k in range(3)]
    whole = EvalResult("test", 3, correct, texts, [False] * 15, list(range(15)))
    parts = [
        EvalResult("test", 3, correct[a:b], texts[3 * a : 3 * b], [False] * 3 * (b - a), list(range(3 * a, 3 * b)))
        for a, b in ((0, 2), (2, 2), (2, 5))
    ]  # an empty shard too: a rank with no problem of a small set
    joined = concat_results(parts)
    ids = [str(i) for i in range(5)]
    assert joined.per_problem(ids) == whole.per_problem(ids) and joined.metrics() == whole.metrics()
    assert joined.responses == texts


def test_oracle_shard_answers_repeated_prompts_as_the_whole_set_does():
    """Identical prompts get their own references in order; a rank starting at row ``first`` must give the
    later copies the later references, as one process does."""

    class Tokenizer:
        eos_token_id = 0

        def __call__(self, text, add_special_tokens=False):
            return {"input_ids": [ord(c) for c in text]}

    prompts, refs = [[1], [2], [1], [1]], ["a", "b", "c", "d"]
    whole, shard = OracleEngine(None, Tokenizer(), None), OracleEngine(None, Tokenizer(), None)
    whole.set_references(prompts, refs)
    shard.set_references(prompts, refs, first=2)
    assert whole.generate(prompts, 1, 1.0, 1.0, 8).texts[2:] == shard.generate(prompts[2:], 1, 1.0, 1.0, 8).texts


def test_per_rank_checkpoint_entries():
    assert checkpoint.own({"old": "format"}) == {"old": "format"}  # before per-rank entries: every rank's
    assert checkpoint.own(checkpoint.per_rank(3)) == 3  # one process
    with pytest.raises(ValueError, match="written by 2 processes and is resumed by 1"):
        checkpoint.own([1, 2])


def test_uneven_prompts_give_every_rank_the_same_number_of_optimizer_steps(monkeypatch):
    """5 prompts on 2 ranks shard 3 + 2: with 4 mini-batches rank 0 could take 3 steps and rank 1 two,
    and the third gradient all-reduce would wait forever. The step count is capped by the smallest share."""
    from prerl.parallel import distributed
    from prerl.train.update import mini_batches

    monkeypatch.setattr(distributed, "world_size", lambda: 2)
    count = distributed.mini_batch_count(4, 5)  # what the trainer asks for
    groups = {0: [0, 0, 1, 1, 2, 2], 1: [0, 0, 1, 1]}  # rank -> its rollout's group ids (2 samples a prompt)
    steps = {r: len(mini_batches(g, count, 1, torch.Generator().manual_seed(0))) for r, g in groups.items()}
    assert steps == {0: 2, 1: 2}
