"""One NSR-PreRL update through the trainer's own path (prepare → policy_update), checked against a
direct computation that follows the official code (docs/paper.md#positive-and-negative-samples-psr-and-nsr):
inputs ``[c] + response`` with positions from 0, A = r − mean_group, only samples with A < 0, token-mean
over their tokens, the loss scaled by ``loss_coef`` 0.01, the gradient clipped at norm 1.0."""

from __future__ import annotations

import copy

import pytest
import torch
from helpers import compose_config, to_run

import prerl.train.trainer as trainer
from prerl.algo.objectives import warmup_phase
from prerl.rollout import Rollout
from prerl.train.update import policy_update

# Three prompts × four samples: group 0 mixed (1 of 4 right), group 1 mixed (3 of 4), group 2 all wrong.
REWARDS = [1.0, 0, 0, 0, 1, 1, 1, 0, 0, 0, 0, 0]
GROUP = [g for g in range(3) for _ in range(4)]


def hand_made_experience(tokenizer) -> trainer.Experience:
    g = torch.Generator().manual_seed(0)
    assert max(tokenizer.all_special_ids) < 10  # ids 10..59 are ordinary tokens
    prompts = [torch.randint(10, 60, (5 + p,), generator=g).tolist() for p in range(3)]
    responses = [
        torch.randint(10, 60, (3 + k % 5,), generator=g).tolist() + [tokenizer.eos_token_id] for k in range(len(GROUP))
    ]
    rollout = Rollout(prompts, responses, GROUP, [False] * len(GROUP), [""] * len(GROUP))
    reward = torch.tensor(REWARDS)
    return trainer.Experience(rollout, reward, reward, 1, sum(len(r) for r in rollout.response_ids))


def direct_official_step(model, exp: trainer.Experience, context_id: int, loss_coef: float, clip: float):
    """The released code's NSR-PreRL loss, written out: returns (loss, clipped gradient per parameter)."""
    r = exp.scores
    mean = torch.stack([r[[i for i, gi in enumerate(GROUP) if gi == g]].mean() for g in GROUP])
    advantage = r - mean  # A_pre = r − mean_group, no std
    kept = [i for i in range(len(r)) if advantage[i] < 0]
    model.zero_grad(set_to_none=True)
    total, n_tokens = 0.0, sum(len(exp.rollout.response_ids[i]) for i in kept)
    for i in kept:  # one sequence at a time: no padding at all
        ids = torch.tensor([[context_id] + exp.rollout.response_ids[i]])
        logits = model(input_ids=ids, position_ids=torch.arange(ids.shape[1]).unsqueeze(0)).logits[0, :-1]
        logp = torch.log_softmax(logits.float(), -1).gather(-1, ids[0, 1:].unsqueeze(-1)).squeeze(-1)
        ratio = torch.exp(logp - logp.detach())  # on-policy: 1, with the gradient of log π
        total = total + (-advantage[i] * ratio).sum() / n_tokens  # token-mean over the kept tokens
    loss = loss_coef * total
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
    return loss.item(), {k: p.grad.clone() for k, p in model.named_parameters()}, kept, advantage


def pre_space_logp(model, exp: trainer.Experience, context_id: int) -> torch.Tensor:
    with torch.no_grad():
        out = []
        for resp in exp.rollout.response_ids:
            ids = torch.tensor([[context_id] + resp])
            logp = torch.log_softmax(model(input_ids=ids).logits[0, :-1], -1).gather(-1, ids[0, 1:].unsqueeze(-1))
            out.append(float(logp.sum()))
        return torch.tensor(out)


@pytest.fixture
def experiment(tmp_path, cache_dir):
    cfg, resolved = to_run(compose_config(["objective=nsr_prerl", "warmup_steps=2"], tmp_path, cache_dir))
    exp = trainer.Experiment(cfg, resolved)
    yield exp
    exp.tracker.finish()


def test_nsr_prerl_update_is_the_official_computation(experiment):
    exp = experiment
    phase = warmup_phase(exp.cfg.objective)
    assert (phase.loss_coef, exp.cfg.optim.grad_clip) == (0.01, 1.0)  # the released defaults
    experience = hand_made_experience(exp.tokenizer)
    batch, _, _ = exp.prepare(phase, experience)

    # the inputs: [c] + response, the prompt nowhere
    for i, resp in enumerate(experience.rollout.response_ids):
        row = batch.seqs.input_ids[i][batch.seqs.attention_mask[i].bool()].tolist()
        assert row == [exp.context_id] + resp
    # the advantages and the mask: A = r − mean_group; wrong answers of the two mixed groups only
    assert batch.advantages[:, 0].tolist() == pytest.approx(
        [0.75, -0.25, -0.25, -0.25, 0.25, 0.25, 0.25, -0.75, 0, 0, 0, 0]
    )
    assert (batch.loss_mask.sum(-1) > 0).nonzero().squeeze(-1).tolist() == [1, 2, 3, 7]

    start = copy.deepcopy(exp.model.state_dict())
    reference = copy.deepcopy(exp.model)
    loss, grads, kept, advantage = direct_official_step(reference, experience, exp.context_id, 0.01, 1.0)
    assert kept == [1, 2, 3, 7] and loss > 0  # −A·ρ with A < 0: a positive loss that descent lowers

    # SGD at lr 1: the weight change is minus the clipped gradient (Adam would hide its scale)
    stats = policy_update(
        exp.model,
        torch.optim.SGD(exp.model.parameters(), lr=1.0),
        batch,
        phase,
        exp.cfg.algorithm,
        exp.cfg.optim,
        exp.cfg.rollout.max_new_tokens,
    )
    assert stats["loss"] == pytest.approx(loss, rel=1e-5)
    step = {k: exp.model.state_dict()[k] - start[k] for k in start}
    scale = max(float(g.abs().max()) for g in grads.values())
    assert scale > 0
    for name, grad in grads.items():
        # padded micro-batch vs one row at a time: the same fp32 terms summed in another order
        # (~10^2 of them), so agreement to ~1e-5 of the largest entry; 1e-4 leaves a margin
        torch.testing.assert_close(step[name], -grad, rtol=1e-4, atol=1e-4 * scale, msg=name)


def test_nsr_prerl_lowers_exactly_the_penalised_responses(experiment):
    exp = experiment
    phase = warmup_phase(exp.cfg.objective)
    experience = hand_made_experience(exp.tokenizer)
    batch, _, _ = exp.prepare(phase, experience)
    before = pre_space_logp(exp.model, experience, exp.context_id)
    start = copy.deepcopy(exp.model.state_dict())
    policy_update(
        exp.model,
        torch.optim.SGD(exp.model.parameters(), lr=0.5),
        batch,
        phase,
        exp.cfg.algorithm,
        exp.cfg.optim,
        exp.cfg.rollout.max_new_tokens,
    )
    after = pre_space_logp(exp.model, experience, exp.context_id)
    penalised = [1, 2, 3, 7]
    weights = -batch.advantages[penalised, 0]
    # first order, Σ w_i Δlog P(y_i | c) = −lr·|g|² < 0 for any batch: the penalised mass goes down
    assert float((weights * (after - before)[penalised]).sum()) < 0
    assert all(after[i] < before[i] for i in penalised), (before, after)

    # the correct responses (and the all-wrong group's) are out of the gradient: other tokens there
    # give the same step
    changed = copy.deepcopy(experience)
    for i in [0, 4, 5, 6, 8, 9, 10, 11]:
        changed.rollout.response_ids[i] = list(reversed(changed.rollout.response_ids[i][:-1])) + [
            exp.tokenizer.eos_token_id
        ]
    step_a = {k: v - start[k] for k, v in exp.model.state_dict().items()}
    exp.model.load_state_dict(start)
    batch_b, _, _ = exp.prepare(phase, changed)
    policy_update(
        exp.model,
        torch.optim.SGD(exp.model.parameters(), lr=0.5),
        batch_b,
        phase,
        exp.cfg.algorithm,
        exp.cfg.optim,
        exp.cfg.rollout.max_new_tokens,
    )
    scale = max(float(d.abs().max()) for d in step_a.values())
    for k, v in exp.model.state_dict().items():
        # the kept rows are the same tokens; only the batch padding differs (≤ 1e-4 of the step, as above)
        torch.testing.assert_close(v - start[k], step_a[k], rtol=1e-4, atol=1e-4 * scale, msg=k)
