"""Policy loss, KL estimators and aggregation modes, by hand."""

import math
from types import SimpleNamespace

import pytest
import torch

from prerl.algo.losses import Normaliser, aggregate, clipped_policy_loss, kl_penalty

CFG = SimpleNamespace(clip_ratio_low=0.2, clip_ratio_high=0.28, clip_ratio_c=3.0)


def loss_at(ratio, adv):
    logp = torch.tensor([[math.log(ratio)]])
    loss, _ = clipped_policy_loss(logp, torch.zeros(1, 1), torch.tensor([[adv]]), torch.ones(1, 1), CFG)
    return loss.item()


def test_on_policy_loss_is_minus_advantage_with_gradient_minus_advantage():
    logp = torch.zeros(1, 2, requires_grad=True)
    adv = torch.tensor([[0.5, -2.0]])
    loss, _ = clipped_policy_loss(logp, logp.detach(), adv, torch.ones(1, 2), CFG)
    assert torch.allclose(loss, -adv)
    loss.sum().backward()
    assert torch.allclose(logp.grad, -adv)


@pytest.mark.parametrize(
    "ratio, adv, expected",
    [
        (1.5, 1.0, -1.28),  # positive advantage: ratio clipped at 1 + clip_high
        (0.5, 1.0, -0.5),  # below the range the unclipped (smaller) objective wins
        (0.5, -1.0, 0.8),  # negative advantage: clipped at 1 − clip_low
        (5.0, -1.0, 3.0),  # dual clip caps the loss at −A·c
    ],
)
def test_clipping(ratio, adv, expected):
    assert loss_at(ratio, adv) == pytest.approx(expected, abs=1e-6)


LN2 = math.log(2)


@pytest.mark.parametrize(
    "estimator, expected",
    [
        # log π − log π_ref = [ln 2, −ln 2, 0, −20]; k3 = π_ref/π − 1 − log(π_ref/π) = e^{−x} − 1 + x
        ("k1", [LN2, -LN2, 0.0, -20.0]),
        ("k2", [0.5 * LN2**2, 0.5 * LN2**2, 0.0, 200.0]),
        ("k3", [0.5 - 1 + LN2, 2 - 1 - LN2, 0.0, 10.0]),  # e^20 − 21 is clamped to 10 (verl low_var_kl)
    ],
)
def test_kl_estimators(estimator, expected):
    logp = torch.tensor([0.0, math.log(0.5), math.log(0.3), -20.0])
    ref = torch.tensor([math.log(0.5), 0.0, math.log(0.3), 0.0])
    assert kl_penalty(logp, ref, estimator).tolist() == pytest.approx(expected, abs=1e-6)


def test_kl_gradients_by_hand():
    """d/dx of k1 = 1, of k2 = x, of k3 = 1 − e^{−x}, at x = log π − log π_ref = ln 2."""
    for estimator, grad in (("k1", 1.0), ("k2", LN2), ("k3", 0.5)):
        logp = torch.tensor([0.0], requires_grad=True)
        kl_penalty(logp, torch.tensor([-LN2]), estimator).sum().backward()
        assert logp.grad.item() == pytest.approx(grad, abs=1e-6), estimator


LOSS = torch.tensor([[1.0, 2.0, 3.0, 0.0], [4.0, 0.0, 0.0, 0.0], [9.0, 9.0, 9.0, 9.0]])
MASK = torch.tensor([[1.0, 1.0, 1.0, 0.0], [1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]])


@pytest.mark.parametrize(
    "mode, expected",
    [
        ("token-mean", (1 + 2 + 3 + 4) / 4),
        ("seq-mean-token-sum", (6 + 4) / 2),  # the empty third sequence does not count
        ("seq-mean-token-mean", (2 + 4) / 2),
        ("seq-mean-token-sum-norm", (6 + 4) / (2 * 10)),
    ],
)
def test_aggregation_modes(mode, expected):
    norm = Normaliser.of(MASK, scale=10)
    assert aggregate(LOSS, MASK, mode, norm).item() == pytest.approx(expected)


@pytest.mark.parametrize("mode", ["token-mean", "seq-mean-token-sum", "seq-mean-token-mean", "seq-mean-token-sum-norm"])
def test_micro_batch_shares_sum_to_the_batch_loss(mode):
    norm = Normaliser.of(MASK, scale=10)
    whole = aggregate(LOSS, MASK, mode, norm)
    parts = aggregate(LOSS[:1], MASK[:1], mode, norm) + aggregate(LOSS[1:], MASK[1:], mode, norm)
    assert parts.item() == pytest.approx(whole.item())


def _vectors(new, old, adv):
    logp = torch.log(torch.tensor([new])).requires_grad_(True)
    return logp, torch.log(torch.tensor([old])), torch.full((1, len(new)), float(adv)), torch.ones(1, len(new))


def test_gspo_clips_the_sequence_ratio_by_hand():
    """Token ratios 1.2 and 1.1: the sequence ratio is their geometric mean sqrt(1.32) = 1.148913."""
    from prerl.algo.losses import POLICY_LOSSES
    from prerl.config.schema import AlgorithmConfig

    cfg = AlgorithmConfig(policy_loss="gspo", clip_ratio_low=3e-4, clip_ratio_high=4e-4)
    s = math.sqrt(1.32)
    logp, old, adv, mask = _vectors([0.6, 0.55], [0.5, 0.5], 1.0)
    loss, stats = POLICY_LOSSES["gspo"](logp, old, adv, mask, cfg)
    assert loss.detach()[0].tolist() == pytest.approx([-1.0004, -1.0004])  # A > 0: clipped at 1 + 4e-4
    loss.sum().backward()
    assert logp.grad.tolist() == [[0.0, 0.0]] and float(stats["clip_frac_upper"]) == 1.0
    logp, old, adv, mask = _vectors([0.6, 0.55], [0.5, 0.5], -1.0)
    loss, stats = POLICY_LOSSES["gspo"](logp, old, adv, mask, cfg)
    assert loss.detach()[0].tolist() == pytest.approx([s, s], abs=1e-6)  # A < 0: the unclipped term is larger
    loss.sum().backward()
    assert logp.grad[0].tolist() == pytest.approx([s, s], abs=1e-6)  # d(−A·s_it)/d log π_t = −A·s_i
    assert float(stats["clip_frac"]) == 0.0


def test_cispo_keeps_the_gradient_of_clipped_tokens_by_hand():
    """Ratio 1.2 (inside 1.28) weighs 1.2; ratio 1.5 is clipped to weigh 1.28 — where PPO's clip
    would give that token no gradient at all."""
    from prerl.algo.losses import POLICY_LOSSES
    from prerl.config.schema import AlgorithmConfig

    cfg = AlgorithmConfig(policy_loss="cispo", clip_ratio_low=1.0, clip_ratio_high=0.28)
    logp, old, adv, mask = _vectors([0.6, 0.75], [0.5, 0.5], 1.0)
    loss, stats = POLICY_LOSSES["cispo"](logp, old, adv, mask, cfg)
    assert loss.detach()[0].tolist() == pytest.approx([-1.2 * math.log(0.6), -1.28 * math.log(0.75)], abs=1e-6)
    loss.sum().backward()
    assert logp.grad[0].tolist() == pytest.approx([-1.2, -1.28], abs=1e-6)
    assert float(stats["clip_frac_upper"]) == 0.5
    ppo = AlgorithmConfig(clip_ratio_low=0.2, clip_ratio_high=0.2)
    logp, old, adv, mask = _vectors([0.6, 0.75], [0.5, 0.5], 1.0)
    POLICY_LOSSES["clipped"](logp, old, adv, mask, ppo)[0].sum().backward()
    assert logp.grad[0, 1] == 0.0  # PPO: ratio 1.5 > 1.2 with A > 0 is clipped away


def test_every_policy_loss_returns_the_stats_it_declares():
    """The update logs the declared names on every rank; a loss must return exactly those."""
    from prerl.algo.losses import POLICY_LOSS_STATS, POLICY_LOSSES
    from prerl.algo.registry import load_plugins
    from prerl.config.schema import AlgorithmConfig

    load_plugins()
    assert {"clipped", "gspo", "cispo"} <= set(POLICY_LOSSES)
    for name, fn in POLICY_LOSSES.items():
        logp, old, adv, mask = _vectors([0.6, 0.75], [0.5, 0.5], 1.0)
        _, stats = fn(logp, old, adv, mask, AlgorithmConfig(policy_loss=name))
        assert set(stats) == set(POLICY_LOSS_STATS[name]), name


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"clip_ratio_low": 1.5}, "algorithm.clip_ratio_low=1.5: must be in [0, 1]"),
        ({"clip_ratio_high": -0.1}, "algorithm.clip_ratio_high=-0.1: must be >= 0"),
        ({"clip_ratio_c": 1.0}, "algorithm.clip_ratio_c=1.0: must be > 1"),
        ({"policy_loss": "gspo", "clip_ratio_low": -1.0}, "algorithm.clip_ratio_low=-1.0: must be in [0, 1]"),
        ({"policy_loss": "cispo", "clip_ratio_high": -1.0}, "algorithm.clip_ratio_high=-1.0: must be >= 0"),
        ({"policy_loss": "ppo"}, "algorithm.policy_loss='ppo': choose one of ['cispo', 'clipped', 'gspo']"),
        (
            {"loss_agg_mode": "sum"},
            "algorithm.loss_agg_mode='sum': choose one of ['seq-mean-token-mean', "
            "'seq-mean-token-sum', 'seq-mean-token-sum-norm', 'token-mean']",
        ),
        (
            {"loss_agg_mode": "seq-mean-token-sum-norm", "loss_scale_factor": 0.0},
            "algorithm.loss_scale_factor=0.0: must be > 0",
        ),
    ],
)
def test_each_part_checks_its_own_knobs(overrides, message):
    from prerl.config.schema import AlgorithmConfig, TrainConfig
    from prerl.launch.choices import part_errors

    assert part_errors(TrainConfig(algorithm=AlgorithmConfig(**overrides))) == [message]


def test_a_knob_is_checked_only_by_the_part_that_reads_it():
    """GSPO and CISPO have no dual clip: its bound is not theirs to check."""
    from prerl.config.schema import AlgorithmConfig, KLConfig, TrainConfig
    from prerl.launch.choices import part_errors

    assert part_errors(TrainConfig(algorithm=AlgorithmConfig(policy_loss="gspo", clip_ratio_c=0.5))) == []
    assert part_errors(TrainConfig(algorithm=AlgorithmConfig(kl=KLConfig(estimator="k4")))) == [
        "algorithm.kl.estimator='k4': choose one of ['k1', 'k2', 'k3']"
    ]
