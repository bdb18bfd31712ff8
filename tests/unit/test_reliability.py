"""Faults and hostile input in one process, without a model: a truncated checkpoint falls back to the
previous one, a verdict that swallows its own timeout still ends, and hostile completions score zero
without hanging (runs: tests/integration/test_reliability_runs.py; processes:
tests/process/test_reliability_processes.py)."""

import signal

import pytest

from prerl.scoring.rewards import math_reward
from prerl.train import checkpoint


def test_a_truncated_checkpoint_falls_back_to_the_previous_one(tmp_path):
    checkpoint.save(tmp_path, 1, {"step": 1}, keep_last=3)
    checkpoint.save(tmp_path, 2, {"step": 2}, keep_last=3)
    (tmp_path / "step_000002.pt").write_bytes(b"\x80\x02 truncated")
    assert checkpoint.load_latest(tmp_path)["step"] == 1
    for step in (3, 4, 5):
        checkpoint.save(tmp_path, step, {"step": step}, keep_last=3)
    assert [p.name for p in checkpoint.checkpoints(tmp_path)] == ["step_000003.pt", "step_000004.pt", "step_000005.pt"]


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    "response",
    [
        r"\boxed{10^{10^{10^{10^{10^{10}}}}}}",  # an enormous exponent
        r"\boxed{" + r"\frac{1}{" * 300 + "2" + "}" * 600,  # deeply nested LaTeX
        "\udcff\udcfe broken bytes \\boxed{\udcff}",  # non-UTF-8 input decoded with surrogateescape
        r"\boxed{1}\boxed{2}\boxed{",  # several boxes, the last unclosed
    ],
)
def test_hostile_completions_score_zero_without_hanging(response):
    assert math_reward(response, "3") == 0.0


@pytest.mark.timeout(60)
def test_a_verdict_that_swallows_its_own_timeout_still_ends(monkeypatch):
    """math-verify's numeric comparison catches every ``Exception``, its timeout included, and may then
    compare for ever (``\\boxed{10^{10^{10^{10}}}}`` did, in one full test run). A stand-in that swallows
    every ``Exception`` for ever: the CPU-time guard still ends the verdict, as a wrong answer."""
    import prerl.scoring.rewards as rewards

    def stubborn(gold, predicted, timeout_seconds=None):
        while True:
            try:
                sum(range(10_000))
            except Exception:  # noqa: BLE001 - what the guard must get through
                pass

    monkeypatch.setattr(rewards, "verify", stubborn)
    monkeypatch.setattr(rewards, "CPU_GUARD_S", 0.2)
    assert rewards._math_verify.__wrapped__("x^2 + 1", "3", 2, 2) == 0.0
    assert signal.getsignal(signal.SIGVTALRM) == signal.SIG_DFL  # the guard left nothing behind
    assert signal.getitimer(signal.ITIMER_VIRTUAL) == (0.0, 0.0)
