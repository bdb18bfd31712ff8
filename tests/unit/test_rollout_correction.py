"""Rollouts from another sampler (prerl/algo/rollout_correction.py): the sampler's log-probs come back with
the rollout, the mismatch to the trainer is measured, and the registered corrections weight the policy
gradient as their formulas say (in runs of the micro model: tests/integration/test_rollout_correction_runs.py)."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from helpers import LOGIT_TOLERANCE, tiny_qwen3

from prerl.algo import rollout_correction as rc
from prerl.algo.objectives import main_phase
from prerl.config.schema import AlgorithmConfig, OptimConfig, RolloutCorrectionConfig
from prerl.rollout import decode
from prerl.rollout.base import Rollout, concat, select_groups
from prerl.train.logprobs import next_token_logprobs, pack, response_logprobs, score_logprobs
from prerl.train.update import UpdateBatch, policy_update

EPS = torch.finfo(torch.float32).eps

P = rc.METRIC_PREFIX


def logps_with_ratios(ratios: list[list[float]]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Trainer and sampler log-probs whose ratios are ``ratios`` (rows right-padded), and the mask."""
    width = max(map(len, ratios))
    mask = torch.tensor([[1.0] * len(r) + [0.0] * (width - len(r)) for r in ratios])
    log_r = torch.tensor([[math.log(x) for x in r] + [0.0] * (width - len(r)) for r in ratios])
    sampler = torch.full(mask.shape, -2.0) * mask
    return sampler + log_r, sampler, mask


RATIOS = [[1.5, 0.5, 4.0], [1.0, 1.0, 1.0, 1.0], [3.0, 0.25]]  # no ratio sits on a bound below

# A log-ratio built above and taken back (log r rounded, −2 added, the sampler's −2 subtracted) carries
# three fp32 roundings of values below 4; a ratio is off by that relatively, a sequence's by 3 times it.
LOG_ERR = 3 * 4 * EPS


def close(got: torch.Tensor, want: list[list[float]], rel: float) -> bool:
    return torch.allclose(got, torch.tensor(want), rtol=rel, atol=0.0)


def test_tis_truncates_each_token_at_the_cap():
    trainer, sampler, mask = logps_with_ratios(RATIOS)
    weight, metrics = rc.correct(trainer, sampler, mask, RolloutCorrectionConfig(name="tis", cap=2.0))
    want = [[1.5, 0.5, 2.0, 0.0], [1.0, 1.0, 1.0, 1.0], [2.0, 0.25, 0.0, 0.0]]  # min(r, 2), 0 on padding
    assert close(weight, want, 2 * LOG_ERR)
    assert metrics[P + "corrected_frac"] == 2 / 9 and metrics[P + "beyond_cap_frac"] == 2 / 9
    # (1.5 + 0.5 + 2 + 4·1 + 2 + 0.25) / 9
    assert metrics[P + "weight_mean"] == pytest.approx(10.25 / 9, rel=2 * LOG_ERR)


def test_mis_keeps_a_sequence_at_its_ratio_inside_the_bounds_and_drops_it_outside():
    """Sequence ratios 1.5·0.5·4 = 3, 1 and 3·0.25 = 0.75."""
    trainer, sampler, mask = logps_with_ratios(RATIOS)
    weight, metrics = rc.correct(trainer, sampler, mask, RolloutCorrectionConfig(name="mis", lower=0.8, upper=3.5))
    want = [[3.0, 3.0, 3.0, 0.0], [1.0, 1.0, 1.0, 1.0], [0.0, 0.0, 0.0, 0.0]]  # 0.75 < 0.8: dropped
    assert close(weight, want, 4 * LOG_ERR)
    assert metrics[P + "corrected_frac"] == 2 / 9  # the two tokens of the dropped sequence
    weight, _ = rc.correct(trainer, sampler, mask, RolloutCorrectionConfig(name="mis", lower=0.0, upper=2.0))
    assert close(weight[:, :1], [[0.0], [1.0], [0.75]], 4 * LOG_ERR)  # 3 > 2: dropped; no lower bound


def test_no_correction_weighs_every_token_alike_and_still_measures():
    trainer, sampler, mask = logps_with_ratios(RATIOS)
    weight, metrics = rc.correct(trainer, sampler, mask, RolloutCorrectionConfig(name="none", cap=2.0))
    assert torch.equal(weight, mask)
    ratios = [r for row in RATIOS for r in row]
    n = len(ratios)
    # KL(π_sampler ‖ π_old) from the sampler's draws: k1 = −log r, k3 = r − 1 − log r (Schulman)
    tol = 2 * 4 * LOG_ERR  # each term: a log-ratio's error, times |d(r − 1 − log r)/d log r| ≤ 4 for k3
    assert metrics[P + "kl_k1"] == pytest.approx(-sum(map(math.log, ratios)) / n, abs=tol)
    assert metrics[P + "kl_k3"] == pytest.approx(sum(r - 1 - math.log(r) for r in ratios) / n, abs=tol)
    assert metrics[P + "ratio_max"] == pytest.approx(4.0, rel=2 * LOG_ERR)
    assert metrics[P + "ratio_p99"] == pytest.approx(4.0, rel=2 * LOG_ERR)  # nearest rank ⌈0.99·9⌉ = 9: the largest
    assert metrics[P + "beyond_cap_frac"] == 2 / 9 and metrics[P + "corrected_frac"] == 0.0
    assert metrics[P + "weight_mean"] == 1.0


def test_the_99th_percentile_is_the_nearest_rank():
    trainer, sampler, mask = logps_with_ratios([[1.0] * 97 + [5.0, 6.0, 7.0], [1.0] * 100])
    _, metrics = rc.correct(trainer, sampler, mask, RolloutCorrectionConfig())
    # 200 tokens: rank ⌈198⌉ is the third largest ratio
    assert metrics[P + "ratio_p99"] == pytest.approx(5.0, rel=2 * LOG_ERR)
    assert metrics[P + "ratio_max"] == pytest.approx(7.0, rel=2 * LOG_ERR)


def log_softmax_bound(scaled: torch.Tensor) -> float:
    """How far two fp32 evaluations of s_y − logsumexp(s) over a row of V values may differ: the sum of
    V exponentials (each within 2 ulps, SLEEF's are within 1) has a relative error of at most (V + 1)·ε,
    an absolute one after the log; the max shift, the final subtraction and the log's own rounding add
    ε·(2·max|s| + log V) each. Twice that: both sides round."""
    V = scaled.shape[-1]
    return 2 * EPS * ((V + 1) + 2 * float(scaled.abs().max()) + math.log(V) + 2)


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_draw_gives_the_trainers_log_softmax_of_the_drawn_token(temperature):
    torch.manual_seed(0)
    logits = 4 * torch.randn(64, 300)
    token, logp = decode.draw(logits, temperature, 1.0)
    trainer, _ = next_token_logprobs(logits.unsqueeze(1), token.view(-1, 1), temperature)
    bound = log_softmax_bound(logits / temperature)
    assert (logp - trainer.squeeze(1)).abs().max() <= bound
    at_one, _ = next_token_logprobs(logits.unsqueeze(1), token.view(-1, 1), 1.0)
    assert temperature == 1.0 or (logp - at_one.squeeze(1)).abs().max() > 100 * bound  # scored at T, not at 1


def test_draw_with_top_p_gives_the_renormalised_nucleus():
    """Within the nucleus the drawn token's probability is p_y / Σ_nucleus p: the distribution sampled."""
    torch.manual_seed(1)
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]] * 400))
    token, logp = decode.draw(logits, 1.0, 0.75)  # nucleus {0.5, 0.3}: the smallest set reaching 0.75
    assert set(token.tolist()) == {0, 1}
    want = torch.log(torch.tensor([0.5, 0.3]) / 0.8)[token]
    assert (logp - want).abs().max() <= 16 * EPS  # a softmax of 4 values, a cumsum of 2 and two logs
    greedy_token, greedy_logp = decode.draw(logits, 0.0, 1.0)
    assert greedy_token.tolist() == [0] * 400 and greedy_logp.tolist() == [0.0] * 400  # a point mass


def test_a_rollouts_log_probs_follow_its_responses_through_groups_and_rounds():
    def rollout(tag: float, n_prompts: int) -> Rollout:
        responses = [[1] * (k + 1) for k in range(2 * n_prompts)]
        logps = [[tag + k] * (k + 1) for k in range(2 * n_prompts)]
        group = [g for g in range(n_prompts) for _ in range(2)]
        return Rollout([[9]] * n_prompts, responses, group, [False] * len(group), [""] * len(group), logps)

    a, b = rollout(0.0, 2), rollout(10.0, 1)
    both = concat([a, b])
    assert both.sample_logprobs == a.sample_logprobs + b.sample_logprobs
    kept = select_groups(both, [2, 0])
    assert kept.sample_logprobs == [[10.0], [11.0, 11.0], [0.0], [1.0, 1.0]]
    assert [len(r) for r in kept.response_ids] == [len(lp) for lp in kept.sample_logprobs]
    assert concat([a, Rollout([[9]], [[1]], [0], [False], [""])]).sample_logprobs is None  # one part has none


PROMPTS = [[3, 4, 5, 6], [7, 8, 9, 10], [11, 12, 13, 14]]

N, NEW, TEMPERATURE = 2, 6, 0.8

NO_EOS = -1  # every response runs to NEW tokens: the rows are alike in length, one micro-batch in order


def bf16_rollout(model):
    """The transformers engine's sampling loop under bf16 autocast (the policy's weights stay fp32)."""
    with torch.autocast("cpu", dtype=torch.bfloat16):
        responses, logps = decode.sample_with_logprobs(model.eval(), PROMPTS, N, TEMPERATURE, 1.0, NEW, NO_EOS, 0)
    group = [g for g in range(len(PROMPTS)) for _ in range(N)]
    seqs = pack([PROMPTS[g] for g in group], responses, 0)
    return seqs, rc.padded(logps, tuple(seqs.response_mask.shape))


ADVANTAGES = [1.0, -1.0, 0.5, -0.5, 2.0, -2.0]


def update_gradients(model, seqs, is_weight):
    """The gradient of one on-policy GRPO update (clipped loss, token-mean) with the correction's weights."""
    model = copy.deepcopy(model).train()
    mask = seqs.response_mask
    adv = torch.tensor(ADVANTAGES).unsqueeze(-1) * mask
    algo, optim = AlgorithmConfig(), OptimConfig(micro_batch_tokens=4096, grad_clip=1e9)  # no clipping
    batch = UpdateBatch(seqs, adv, mask, temperature=TEMPERATURE, is_weight=is_weight)
    optimizer, grads = torch.optim.SGD(model.parameters(), lr=0.0), []
    optimizer.register_step_pre_hook(lambda *_: grads.extend(p.grad.clone() for p in model.parameters()))
    policy_update(model, optimizer, batch, main_phase(algo), algo, optim, NEW)  # frees the gradients after
    return grads


def gradients_by_hand(model, seqs, weight):
    """The corrected policy gradient written out: on-policy the ratio π_θ/π_old is 1 and PPO's clip is
    inactive, so the loss is token-mean of −A·ratio·w with w the importance weight."""
    model = copy.deepcopy(model).train()
    mask = seqs.response_mask
    adv = torch.tensor(ADVANTAGES).unsqueeze(-1) * mask
    logp, _ = response_logprobs(model, seqs, "detached", TEMPERATURE)
    ratio = torch.exp(logp - logp.detach())
    ((-adv * ratio * weight * mask).sum() / mask.sum()).backward()
    return [p.grad for p in model.parameters()]


@pytest.mark.parametrize(
    "cfg,by_hand",
    [
        (  # C = 1: every token whose ratio exceeds 1 is truncated
            RolloutCorrectionConfig(name="tis", cap=1.0),
            lambda log_r, mask: torch.minimum(log_r.exp(), torch.tensor(1.0)),
        ),
        (  # sequences whose ratio ρ is below 1 are dropped, the others weighted by ρ (bounds compared in logs)
            RolloutCorrectionConfig(name="mis", lower=1.0, upper=3.0),
            lambda log_r, mask: torch.where(
                (0.0 <= (log_rho := (log_r * mask).sum(-1))) & (log_rho <= math.log(3.0)), log_rho.exp(), 0.0
            ).unsqueeze(-1),
        ),
    ],
    ids=["tis", "mis"],
)
def test_bf16_sampling_against_an_fp32_trainer_is_measured_and_corrected_as_by_hand(cfg, by_hand):
    """The same kernels in the same order on both sides (one micro-batch, rows in order, the loss's
    products associated alike): the gradients agree bit for bit."""
    torch.manual_seed(0)
    model = tiny_qwen3()
    seqs, sampler = bf16_rollout(model)
    mask = seqs.response_mask
    trainer = score_logprobs(model, seqs, 4096, TEMPERATURE)  # π_old: fp32, no autocast
    weight, metrics = rc.correct(trainer, sampler, mask, cfg)

    assert metrics[P + "kl_k3"] > 0 and metrics[P + "kl_k1"] != 0  # bf16 draws are not fp32's
    assert metrics[P + "ratio_max"] > 1 and 0 < metrics[P + "corrected_frac"] < 1
    by_hand_weight = by_hand(trainer - sampler, mask) * mask
    assert torch.equal(weight, by_hand_weight.expand_as(weight))

    ours = update_gradients(model, seqs, weight)
    assert all(torch.equal(a, b) for a, b in zip(ours, gradients_by_hand(model, seqs, by_hand_weight)))
    uncorrected = update_gradients(model, seqs, None)
    assert any(not torch.equal(a, b) for a, b in zip(ours, uncorrected))


@pytest.mark.parametrize("name", ["tis", "mis"])
def test_a_sampler_that_is_the_trainer_is_left_alone(name):
    """Log-probs equal to the trainer's own: every weight is exactly 1 and the update is the uncorrected one."""
    torch.manual_seed(0)
    model = tiny_qwen3()
    seqs, _ = bf16_rollout(model)
    trainer = score_logprobs(model, seqs, 4096, TEMPERATURE)
    weight, metrics = rc.correct(trainer, trainer.clone(), seqs.response_mask, RolloutCorrectionConfig(name=name))
    assert torch.equal(weight, seqs.response_mask)
    assert metrics[P + "kl_k1"] == metrics[P + "kl_k3"] == metrics[P + "corrected_frac"] == 0.0
    assert metrics[P + "ratio_max"] == metrics[P + "ratio_p99"] == 1.0
    ours, plain = update_gradients(model, seqs, weight), update_gradients(model, seqs, None)
    assert all(torch.equal(a, b) for a, b in zip(ours, plain))


@pytest.mark.parametrize("plain_decode", [True, False], ids=["plain", "modules"])
def test_the_fp32_transformers_engine_and_the_trainer_agree_to_rounding(plain_decode):
    """The engine samples with the trainer's weights in fp32, so only the order of the sums differs:
    its logits agree with the full forward's to LOGIT_TOLERANCE (tests/unit/test_decode.py), and the
    log-softmax is 2-Lipschitz in the max-norm of the logits, so |log r| ≤ 2·LOGIT_TOLERANCE / T plus the
    rounding of the two log-softmaxes. Every TIS and MIS weight is then 1 to that, and a weight that read
    another token, position or temperature would be off by far more."""
    torch.manual_seed(0)
    model = tiny_qwen3().eval()
    with torch.inference_mode():
        responses, logps = decode.sample_with_logprobs(
            model, PROMPTS, N, TEMPERATURE, 1.0, NEW, NO_EOS, 0, plain_decode
        )
    group = [g for g in range(len(PROMPTS)) for _ in range(N)]
    seqs = pack([PROMPTS[g] for g in group], responses, 0)
    sampler = rc.padded(logps, tuple(seqs.response_mask.shape))
    trainer = score_logprobs(model, seqs, 4096, TEMPERATURE)
    with torch.no_grad():
        vocab = model.config.vocab_size
        logit_scale = float(model(input_ids=seqs.input_ids).logits.abs().max()) / TEMPERATURE
    lsm = 2 * EPS * ((vocab + 1) + 2 * logit_scale + math.log(vocab) + 2)
    bound = 2 * LOGIT_TOLERANCE / TEMPERATURE + lsm
    assert ((trainer - sampler) * seqs.response_mask).abs().max() <= bound
    for cfg in (RolloutCorrectionConfig(name="tis", cap=1.0), RolloutCorrectionConfig(name="mis", lower=0.5)):
        weight, metrics = rc.correct(trainer, sampler, seqs.response_mask, cfg)
        seq_bound = NEW * bound if cfg.name == "mis" else bound  # a sequence ratio adds NEW token log-ratios
        on = seqs.response_mask.bool()
        assert (weight[on] - 1).abs().max() <= math.expm1(seq_bound)
        assert metrics[P + "kl_k3"] <= bound**2 and abs(metrics[P + "kl_k1"]) <= bound  # k3 ≈ ½(log r)²
