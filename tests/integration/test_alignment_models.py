"""Gradient alignment against a direct computation on the micro model: its summary, plot and command,
and a training checkpoint loaded as the model."""

import numpy as np
import pytest
import torch

from analysis import alignment
from analysis.common import load, sample, short_name


@pytest.fixture(scope="module")
def micro(cache_dir):
    return load("micro", cache_dir)


@pytest.fixture(scope="module")
def samples(micro):
    return sample(micro, "test", problems=2, samples_per_prompt=2, max_new_tokens=12, seed=0)


def direct(model, ctx, response):
    """Σ_t log π(y_t | ctx, y_<t), its flat gradient and the per-token log-probs, written out plainly."""
    ids = torch.tensor([ctx + response])
    model.zero_grad()
    logp = torch.log_softmax(model(input_ids=ids).logits[0].float(), -1)
    positions = torch.arange(len(ctx) - 1, len(ctx) + len(response) - 1)
    token_logp = logp[positions, torch.tensor(response)]
    token_logp.sum().backward()
    grad = torch.cat([p.grad.reshape(-1) for p in model.parameters()])
    model.zero_grad()
    return grad, token_logp.detach()


def test_matches_direct_computation(micro, samples):
    ctx_pre = [micro.context_id]
    ctx_post, response = samples.prompt_ids[0], samples.response_ids[0]
    got = alignment.response_alignment(micro.model, ctx_pre, ctx_post, response, micro.tokenizer.pad_token_id)
    g_pre, lp_pre = direct(micro.model, ctx_pre, response)
    g_post, lp_post = direct(micro.model, ctx_post, response)
    assert got.inner == pytest.approx(float(g_pre @ g_post), rel=1e-4)
    assert got.cosine == pytest.approx(float(torch.cosine_similarity(g_pre, g_post, 0)), rel=1e-4)
    np.testing.assert_allclose(got.logp_pre, lp_pre.numpy(), atol=1e-5)
    np.testing.assert_allclose(got.logp_post, lp_post.numpy(), atol=1e-5)
    assert len(got.entropy_post) == len(response) and (got.entropy_post >= 0).all()


def test_identical_contexts_give_cosine_one_and_zero_gap(micro, samples):
    ctx, response = samples.prompt_ids[1], samples.response_ids[1]
    same = alignment.response_alignment(micro.model, ctx, ctx, response, micro.tokenizer.pad_token_id)
    assert same.cosine == pytest.approx(1.0, abs=1e-5)
    assert same.inner == pytest.approx(same.norm_pre**2, rel=1e-5)
    np.testing.assert_allclose(same.logp_post - same.logp_pre, 0.0, atol=1e-6)


def test_summary_plot_and_cli(micro, samples, cache_dir, tmp_path):
    results = alignment.align(micro, samples)
    stats = alignment.summarise(results)
    inner = [r.inner for r in results]
    assert stats["responses"] == len(samples.texts)
    assert stats["inner_mean"] == pytest.approx(np.mean(inner)) and stats["inner_max"] == pytest.approx(max(inner))
    assert stats["negative_frac"] == pytest.approx(np.mean(np.array(inner) < 0))
    tok = alignment.token_table(results)
    assert stats["abs_gap_mean"] == pytest.approx(np.abs(tok["logp_post"] - tok["logp_pre"]).mean())
    assert alignment.plot(results, tmp_path / "a.png").stat().st_size > 10_000

    out = tmp_path / "cli"
    cli = alignment.main(
        [
            "--model",
            "micro",
            "--problems",
            "1",
            "--samples",
            "2",
            "--max-new-tokens",
            "8",
            "--cache-dir",
            cache_dir,
            "--out",
            str(out),
        ]
    )
    assert -1 <= cli["cosine_mean"] <= 1
    assert {"alignment.png", "alignment.json", "tokens.npz", "alignment.md"} <= {p.name for p in out.iterdir()}


def test_load_training_checkpoint(micro, cache_dir, tmp_path):
    """``outputs/<run>/checkpoints/step_*.pt``: the run's model (from .hydra/config.yaml), checkpointed weights."""
    from omegaconf import OmegaConf

    from prerl.config.schema import MiniModelConfig, ModelConfig

    run = tmp_path / "run"
    (run / ".hydra").mkdir(parents=True)
    (run / "checkpoints").mkdir()
    OmegaConf.save(
        {"model": OmegaConf.structured(ModelConfig(mini=MiniModelConfig.micro()))}, run / ".hydra" / "config.yaml"
    )
    weights = {k: v + 0.01 for k, v in micro.model.state_dict().items()}
    torch.save({"step": 20, "model": weights}, run / "checkpoints" / "step_000020.pt")
    spec = str(run / "checkpoints" / "step_000020.pt")
    loaded = load(spec, cache_dir)
    assert all(torch.equal(v, weights[k]) for k, v in loaded.model.state_dict().items())
    assert loaded.context_id == micro.context_id
    assert short_name(spec) == "run_step20"
