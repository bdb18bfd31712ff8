"""No wasted forward passes — one on-policy update reuses its own log-probs (the ratio is 1), several
updates per rollout score the behaviour policy once, a pre-train-space phase never runs the conditional
forward — checked by recording every call of the policy's forward outside generation during one real
step on the micro model. Nothing is timed."""

from __future__ import annotations

import functools

import pytest
import torch
from helpers import coin_grader, compose_config, reward_training_with, to_run

import prerl.train.trainer as trainer


def record_scoring_forwards(exp: trainer.Experiment) -> list[dict]:
    """Wrap the policy's forward: every call outside generation (inference mode) is recorded
    with its unpadded input rows and whether it builds a graph."""
    calls, forward = [], exp.model.forward

    @functools.wraps(forward)  # the same signature: callers inspect it
    def spy(*args, input_ids=None, attention_mask=None, **kwargs):
        if not torch.is_inference_mode_enabled():  # the mask's last columns are the input's (a cache precedes)
            own = attention_mask[:, -input_ids.shape[1] :]
            rows = [tuple(ids[m.bool()].tolist()) for ids, m in zip(input_ids, own)]
            calls.append({"rows": rows, "grad": torch.is_grad_enabled()})
        return forward(*args, input_ids=input_ids, attention_mask=attention_mask, **kwargs)

    exp.model.forward = spy
    return calls


def run_step(overrides, tmp_path, cache_dir, monkeypatch):
    reward_training_with(monkeypatch, coin_grader)  # mixed groups: every objective has samples
    cfg, resolved = to_run(compose_config(overrides, tmp_path, cache_dir))
    exp = trainer.Experiment(cfg, resolved)
    seen = {}
    collect = exp.collect

    def keep(*a, **k):
        seen["exp"] = collect(*a, **k)
        return seen["exp"]

    exp.collect = keep
    calls = record_scoring_forwards(exp)
    try:
        exp.step(0)
    finally:
        exp.tracker.finish()
    return exp, seen["exp"].rollout, calls


# No-grad passes of the policy per sample: none on-policy (the ratio's denominator is the update's own
# forward, detached); PPO's KL-in-reward needs log π before its advantages, so one, never a second.
@pytest.mark.parametrize("algorithm,no_grad_passes", [("grpo", 0), ("dr_grpo", 0), ("ppo", 1)])
def test_on_policy_update_runs_no_old_logprob_pass(algorithm, no_grad_passes, tmp_path, cache_dir, monkeypatch):
    overrides = [f"algorithm={algorithm}", "warmup_steps=0", "optim.shared_prompt_forward=false"]
    _, rollout, calls = run_step(overrides, tmp_path, cache_dir, monkeypatch)
    trained = [row for c in calls if c["grad"] for row in c["rows"]]
    untrained = [row for c in calls if not c["grad"] for row in c["rows"]]
    assert trained, "the update ran no forward"
    assert len(trained) <= len(rollout.response_ids)  # each trained sample forwarded once
    assert len(untrained) == no_grad_passes * len(rollout.response_ids)
    conditional = {tuple(rollout.prompt_ids[g] + r) for g, r in zip(rollout.group, rollout.response_ids)}
    assert set(trained + untrained) <= conditional  # post-train space: prompt + response


@pytest.mark.parametrize("algorithm,no_grad_passes", [("grpo", 0), ("ppo", 1)])
def test_shared_prompt_forward_runs_each_prompt_once_per_pass(
    algorithm, no_grad_passes, tmp_path, cache_dir, monkeypatch
):
    """With the shared-context forward (the default) the policy sees prompts and responses in separate
    rows: each prompt once per pass over the batch (the update's, or a scoring pass), each forwarded
    sample's response once per pass (the longest of a micro-batch without its last token, which
    predicts nothing; shorter ones whole, in columns the longest pads anyway), and never a prompt and
    its response in one row."""
    overrides = [f"algorithm={algorithm}", "warmup_steps=0", "optim.micro_batch_tokens=64"]  # several micro-batches
    _, rollout, calls = run_step(overrides, tmp_path, cache_dir, monkeypatch)
    prompts = {tuple(p) for p in rollout.prompt_ids}
    responses = {tuple(r[:-1]) for r in rollout.response_ids} | {tuple(r) for r in rollout.response_ids}
    for grad, passes in [(True, 1), (False, no_grad_passes)]:
        mine = [c for c in calls if c["grad"] == grad]
        context_rows = [row for c in mine for row in c["rows"] if row in prompts]
        response_rows = [row for c in mine for row in c["rows"] if row not in prompts]
        assert set(response_rows) <= responses
        assert len(response_rows) <= passes * len(rollout.response_ids)
        assert len(context_rows) == len(set(context_rows)) <= passes * len(prompts), "a prompt forwarded twice"
        micro_batches = [c for c in mine if c["rows"] and c["rows"][0] not in prompts]
        assert passes == 0 or len(micro_batches) > passes  # several micro-batches per pass shared the prompts
    assert [row for c in calls if c["grad"] for row in c["rows"] if row not in prompts], "the update ran no forward"
    whole = {tuple(rollout.prompt_ids[g] + r) for g, r in zip(rollout.group, rollout.response_ids)}
    assert not whole & {row for c in calls for row in c["rows"]}


@pytest.mark.parametrize("algorithm", ["grpo", "ppo"])
def test_pretrain_phase_never_runs_the_conditional_forward(algorithm, tmp_path, cache_dir, monkeypatch):
    exp, rollout, calls = run_step(
        [f"algorithm={algorithm}", "objective=nsr_prerl", "warmup_steps=2"], tmp_path, cache_dir, monkeypatch
    )
    scored = [row for c in calls for row in c["rows"]]
    assert scored, "the warm-up trained on no sample"
    assert all(c["grad"] for c in calls)
    response_only = {(exp.context_id, *r) for r in rollout.response_ids}
    assert set(scored) <= response_only, "a prompt token entered a pre-train-space forward"
    assert len(scored) <= len(rollout.response_ids)


def sgd_steps(exp, batch, phase, variants: dict, monkeypatch) -> dict[str, tuple[torch.Tensor, float]]:
    """For each name → (batch, trained_rows) of ``variants``: the weight change and pg_loss of one
    ``policy_update`` from the same start. SGD at lr 1, so the weight change *is* the (clipped) gradient:
    Adam would divide by √v and turn a rounding difference in a near-zero gradient into an lr-sized step."""
    import copy

    import prerl.train.update as update

    cfg, start, out = exp.cfg, copy.deepcopy(exp.model.state_dict()), {}
    for name, (b, rows) in variants.items():
        exp.model.load_state_dict(start)
        optimizer = torch.optim.SGD(exp.model.parameters(), lr=1.0)
        monkeypatch.setattr(update, "trained_rows", rows)
        stats = update.policy_update(
            exp.model, optimizer, b, phase, cfg.algorithm, cfg.optim, cfg.rollout.max_new_tokens
        )
        out[name] = torch.cat([(v - start[k]).flatten() for k, v in exp.model.state_dict().items()]), stats["pg_loss"]
    return out


def assert_same_step(a: tuple[torch.Tensor, float], b: tuple[torch.Tensor, float]) -> None:
    """Two orders of summing the same gradient terms. Each gradient entry sums ~10^3 fp32 terms (samples
    × tokens × hidden units); reordering them moves the sum by at most n·eps·Σ|term| ≈ 1e-4 of the
    largest entry. A sample wrongly left out, or a wrong context, changes a sizeable fraction of it."""
    scale = b[0].abs().max()
    assert scale > 0, "the update changed nothing"
    torch.testing.assert_close(a[0], b[0], rtol=1e-4, atol=1e-4 * float(scale))
    assert a[1] == pytest.approx(b[1], rel=1e-4, abs=1e-7)


def grpo_batch(tmp_path, cache_dir, monkeypatch):
    """A GRPO batch of 4 prompts whose first two samples of each group are rewarded: mixed groups."""
    from prerl.algo.objectives import main_phase

    reward_training_with(monkeypatch, lambda responses, golds: [float(i < 2) for i in range(len(responses))])
    cfg, resolved = to_run(
        compose_config(["algorithm=grpo", "warmup_steps=0", "prompts_per_step=4"], tmp_path, cache_dir)
    )
    exp = trainer.Experiment(cfg, resolved)
    phase = main_phase(cfg.algorithm)
    return exp, phase, exp.prepare(phase, exp.collect())[0]


def test_skipping_zero_advantage_samples_leaves_the_update_unchanged(tmp_path, cache_dir, monkeypatch):
    """GRPO on a batch whose equal-reward groups have zero advantage: the step is the same whether those
    samples are forwarded or not (the normaliser counts their tokens either way)."""
    import prerl.train.update as update

    exp, phase, batch = grpo_batch(tmp_path, cache_dir, monkeypatch)
    try:
        zero = (batch.advantages * batch.loss_mask).abs().sum(-1) == 0
        assert zero.any() and not zero.all(), "the batch needs both zero- and non-zero-advantage samples"
        skip = update.trained_rows
        variants = {"skipping": (batch, skip), "forwarding all": (batch, lambda b, needs_all: skip(b, needs_all=True))}
        steps = sgd_steps(exp, batch, phase, variants, monkeypatch)
        assert_same_step(steps["skipping"], steps["forwarding all"])
    finally:
        exp.tracker.finish()


def test_shared_prompt_forward_leaves_the_update_unchanged(tmp_path, cache_dir, monkeypatch):
    """The same GRPO step with each prompt forwarded once per micro-batch (its samples on its KV cache)
    and with every sample forwarded whole, micro-batches small enough that groups are split across them."""
    import dataclasses

    import prerl.train.update as update

    exp, phase, batch = grpo_batch(tmp_path, cache_dir, monkeypatch)
    try:
        assert batch.seqs.context_group is not None, "post-train space shares the prompt forward by default"
        whole = dataclasses.replace(batch, seqs=dataclasses.replace(batch.seqs, context_group=None))
        exp.cfg.optim.micro_batch_tokens = 8 * int(batch.seqs.attention_mask.sum(-1).max())
        rows = update.trained_rows
        steps = sgd_steps(exp, batch, phase, {"shared": (batch, rows), "whole": (whole, rows)}, monkeypatch)
        assert_same_step(steps["shared"], steps["whole"])
    finally:
        exp.tracker.finish()


@pytest.fixture
def fresh_dynamo():
    """Compiled graphs are cached per code object across models: start and leave with none."""
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def compiled_frames() -> int:
    """Frames torch.compile has compiled so far in this process (dynamo's own counter)."""
    return int(torch._dynamo.utils.counters["frames"]["ok"])


def test_compiled_decoder_layers_leave_the_update_unchanged(tmp_path, cache_dir, monkeypatch, fresh_dynamo):
    """``model.compile``: the same GRPO step through compiled decoder layers as eagerly, with shared prompts
    (the layers read a KV cache) and with whole rows (no cache, as in pre-train space). Inductor fuses the
    layers' elementwise ops and reductions, which changes fp32 summation orders only."""
    import copy
    import dataclasses

    import prerl.train.update as update
    from prerl.models.loading import compile_decoder_layers

    exp, phase, batch = grpo_batch(tmp_path, cache_dir, monkeypatch)
    try:
        whole = dataclasses.replace(batch, seqs=dataclasses.replace(batch.seqs, context_group=None))
        variants = {"shared": (batch, update.trained_rows), "whole": (whole, update.trained_rows)}
        start = copy.deepcopy(exp.model.state_dict())
        eager = sgd_steps(exp, batch, phase, variants, monkeypatch)
        exp.model.load_state_dict(start)  # sgd_steps starts from the weights it finds
        compile_decoder_layers(exp.model)
        before = compiled_frames()
        compiled = sgd_steps(exp, batch, phase, variants, monkeypatch)
        assert compiled_frames() > before, "no decoder layer was compiled"
        for name in variants:
            assert_same_step(compiled[name], eager[name])
    finally:
        exp.tracker.finish()


def test_compiled_ppo_step_trains_and_decodes_eagerly(tmp_path, cache_dir, monkeypatch, fresh_dynamo):
    """A PPO step with ``model.compile=true`` (policy and critic compiled) trains through compiled layers
    and finite statistics, while sampling compiles nothing (its shapes change at every token)."""
    reward_training_with(monkeypatch, coin_grader)
    overrides = ["algorithm=ppo", "warmup_steps=0", "model.compile=true"]
    cfg, resolved = to_run(compose_config(overrides, tmp_path, cache_dir))
    exp = trainer.Experiment(cfg, resolved)
    generate, frames = exp.engine.generate, {}

    def counted(*a, **k):
        before = compiled_frames()
        out = generate(*a, **k)
        frames["rollout"] = compiled_frames() - before
        return out

    exp.engine.generate = counted
    try:
        before = compiled_frames()
        stats = exp.step(0)
    finally:
        exp.tracker.finish()
    assert frames["rollout"] == 0
    assert compiled_frames() > before, "the update compiled nothing"
    assert all(torch.isfinite(torch.tensor(v)) for v in stats.values() if isinstance(v, float))
