"""Several optimizer steps per rollout, temperature-correct log-probs, Policy Reincarnation: real
steps on the micro model checked against hand-written computations."""

import copy

import pytest
import torch
from helpers import coin_grader, compose_config, reward_training_with, to_run

import prerl.train.trainer as trainer
from prerl.algo.objectives import main_phase, warmup_phase
from prerl.train.logprobs import response_logprobs, select
from prerl.train.update import mini_batches, policy_updates, subset


def experiment(overrides, tmp_path, cache_dir, monkeypatch):
    reward_training_with(monkeypatch, coin_grader)  # mixed groups: every advantage is non-zero somewhere
    cfg, resolved = to_run(compose_config(overrides, tmp_path, cache_dir))
    return trainer.Experiment(cfg, resolved)


def test_log_probs_are_scored_at_the_sampling_temperature(tmp_path, cache_dir, monkeypatch):
    exp = experiment(["algorithm=ppo", "warmup_steps=0", "rollout.temperature=0.7"], tmp_path, cache_dir, monkeypatch)
    try:
        batch, _, _ = exp.prepare(main_phase(exp.cfg.algorithm), exp.collect())
        assert batch.temperature == 0.7 and batch.old_logp is not None  # PPO reuses its rollout
        rows = list(range(3))
        mb = select(batch.seqs, rows)
        with torch.no_grad():
            logits = exp.model(input_ids=mb.input_ids, attention_mask=mb.attention_mask).logits.float()
            by_hand = torch.log_softmax(logits / 0.7, dim=-1)
            got = response_logprobs(exp.model, mb, temperature=0.7)[0]
            at_one = response_logprobs(exp.model, mb)[0]
        for i in rows:
            start, n = int(mb.response_start[i]), int(mb.response_mask[i].sum())
            tokens = mb.input_ids[i, start : start + n]
            want = by_hand[i, start - 1 : start - 1 + n].gather(-1, tokens.unsqueeze(-1)).squeeze(-1)
            assert torch.allclose(got[i, :n], want, atol=1e-5)  # fp32 log-softmax over a 64-token vocabulary
            assert torch.allclose(batch.old_logp[i, :n], want, atol=1e-5)  # π_old is scored at 0.7 too
            assert not torch.allclose(at_one[i, :n], want, atol=1e-3)
    finally:
        exp.tracker.finish()


def clipped_loss_by_hand(logp, old, adv, mask, low, high, c):
    """PPO's clipped objective with dual clip, written out from its formula, token-mean over ``mask``."""
    ratio = torch.exp(logp - old)
    surrogate = torch.maximum(-adv * ratio, -adv * torch.clamp(ratio, 1 - low, 1 + high))
    surrogate = torch.where(adv < 0, torch.minimum(surrogate, -adv * c), surrogate)
    return (surrogate * mask).sum() / mask.sum()


def hand_written_updates(model, batch, parts, algo, lr, grad_clip):
    """The reference loop: per mini-batch one full forward, the loss above, backward, clip, SGD step."""
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    for rows in parts:
        sub = subset(batch, rows)
        opt.zero_grad()
        logits = model(input_ids=sub.seqs.input_ids, attention_mask=sub.seqs.attention_mask).logits.float()
        logp_all = torch.log_softmax(logits / batch.temperature, dim=-1)
        T = sub.seqs.response_ids.shape[1]
        pos = ((sub.seqs.response_start - 1).unsqueeze(-1) + torch.arange(T)).clamp(max=logits.shape[1] - 1)
        # log π(y_t | ·) is read at the position before y_t
        logp = logp_all[torch.arange(len(rows)).unsqueeze(-1), pos, sub.seqs.response_ids]
        loss = clipped_loss_by_hand(
            logp,
            sub.old_logp,
            sub.advantages,
            sub.loss_mask,
            algo.clip_ratio_low,
            algo.clip_ratio_high,
            algo.clip_ratio_c,
        )
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        opt.step()


LR = 0.5  # large SGD steps: the policy moves past the clip range within a step


def run_updates(exp, batch, parts, phase, model=None):
    model = model or exp.model
    opt = torch.optim.SGD(model.parameters(), lr=LR)
    return policy_updates(
        model, opt, batch, parts, phase, exp.cfg.algorithm, exp.cfg.optim, exp.cfg.rollout.max_new_tokens
    )


def collect_with_groups(exp):
    experience = exp.collect()
    return experience, experience.rollout.group


def test_ppo_four_mini_batches_clip_after_the_first_and_match_a_hand_written_loop(tmp_path, cache_dir, monkeypatch):
    exp = experiment(["algorithm=ppo", "warmup_steps=0"], tmp_path, cache_dir, monkeypatch)
    try:
        assert exp.cfg.algorithm.mini_batches_per_step == 4
        phase = main_phase(exp.cfg.algorithm)
        experience, group = collect_with_groups(exp)
        batch, _, _ = exp.prepare(phase, experience)
        parts = mini_batches(group, phase.mini_batches, phase.epochs, torch.Generator().manual_seed(0))
        assert len(parts) == 4
        reference = copy.deepcopy(exp.model)
        before = [p.detach().clone() for p in exp.model.parameters()]
        merged, per_step = run_updates(exp, batch, parts, phase)
        assert per_step[0]["clip_frac"] == 0.0  # the first step is on-policy: ratio 1
        assert max(s["clip_frac"] for s in per_step[1:]) > 0, per_step
        assert merged["optimizer_steps"] == 4.0 and merged["kept_tokens"] == float(batch.loss_mask.sum())
        assert {"clip_frac_upper", "clip_frac_lower", "dual_clip_frac", "approx_kl"} <= set(merged)

        hand_written_updates(reference, batch, parts, exp.cfg.algorithm, LR, exp.cfg.optim.grad_clip)
        for b, ours, theirs in zip(before, exp.model.parameters(), reference.parameters()):
            moved = (theirs - b).abs().max()
            # The same fp32 sums in another order (micro-batches, skipped zero-advantage rows): the
            # gradients agree to a relative ~1e-6, i.e. far below 1e-4 of each step, and each of the 4
            # SGD steps may round the weights differently by up to an ulp, 2 allowed per step. A
            # wrong loss (clip low 0.1 instead of 0.2) moves them by ~4e-2.
            ulps = 8 * torch.finfo(torch.float32).eps * theirs.detach().abs().max()
            assert (ours - theirs).abs().max() <= 1e-4 * moved + ulps
    finally:
        exp.tracker.finish()


def test_dapo_clip_higher_changes_the_weights_against_clip_0_2(tmp_path, cache_dir, monkeypatch):
    exp = experiment(
        ["algorithm=dapo", "warmup_steps=0", "algorithm.overlong_buffer_tokens=0"], tmp_path, cache_dir, monkeypatch
    )
    try:
        phase = main_phase(exp.cfg.algorithm)
        experience, group = collect_with_groups(exp)
        batch, _, _ = exp.prepare(phase, experience)
        parts = mini_batches(group, phase.mini_batches, phase.epochs, torch.Generator().manual_seed(0))
        assert len(parts) > 1
        symmetric = copy.deepcopy(exp.model)
        merged, _ = run_updates(exp, batch, parts, phase)
        exp.cfg.algorithm.clip_ratio_high = 0.2
        run_updates(exp, batch, parts, phase, model=symmetric)
        assert merged["clip_frac"] > 0
        assert any(not torch.equal(a, b) for a, b in zip(exp.model.parameters(), symmetric.parameters()))
    finally:
        exp.tracker.finish()


@pytest.mark.parametrize("reset_optimizer", [False, True])
def test_policy_reincarnation_resets_the_reference_and_optionally_the_optimizer(
    reset_optimizer, tmp_path, cache_dir, monkeypatch
):
    exp = experiment(
        ["algorithm=rloo", "warmup_steps=1", "optim.lr=1e-2", f"reincarnation.reset_optimizer={reset_optimizer}"],
        tmp_path,
        cache_dir,
        monkeypatch,
    )
    try:
        assert exp.reference is not None  # RLOO's KL needs one
        exp.step(0)  # one warm-up update moves the policy away from the reference
        assert any(not torch.equal(a, b) for a, b in zip(exp.model.parameters(), exp.reference.parameters()))
        assert exp.optimizer.state
        exp.reincarnate()
        assert all(torch.equal(a, b) for a, b in zip(exp.model.parameters(), exp.reference.parameters()))
        assert bool(exp.optimizer.state) != reset_optimizer
        assert warmup_phase(exp.cfg.objective).mini_batches == 1  # the warm-up stays one update per step
    finally:
        exp.tracker.finish()
