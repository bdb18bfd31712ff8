"""A plug-in module outside prerl adds parts that a config can name, with nothing else edited."""

import textwrap

import mlflow
import pytest
import torch
from helpers import coin_grader, compose_config, registries_restored, reward_training_with, to_run

from prerl.launch.choices import check_choices
from prerl.train import trainer

PLUGIN = '''
"""A lab's own parts: an absolute-log-ratio KL estimator and a sample weighting that scales negatives
by a knob of its own, declared here (not in the schema)."""
import torch

from prerl.algo.losses import KL_ESTIMATORS
from prerl.algo.objectives import SAMPLE_SELECTIONS, sequence_sign
from prerl.algo.registry import in_range

CALLS = []


@KL_ESTIMATORS.register("abs_{tag}")
def abs_kl(logp, ref_logp):
    CALLS.append("kl")
    return (logp - ref_logp).abs()


@SAMPLE_SELECTIONS.register("negatives_scaled_{tag}", knobs={"negative_weight": 0.5},
                             check=lambda obj, where: in_range(where, obj, "negative_weight", 0, 1))
def negatives_scaled(advantages, mask, phase):
    """Every sample; negative samples' advantages times negative_weight."""
    CALLS.append("samples")
    weight = SAMPLE_SELECTIONS.knob("negatives_scaled_{tag}", phase, "negative_weight")
    negative = (sequence_sign(advantages) < 0).unsqueeze(-1)
    return torch.where(negative, advantages * weight, advantages), mask
'''


@pytest.fixture(autouse=True)
def restored_registries():
    """What a test's plug-in registers leaves with the test (the registries are process-wide)."""
    with registries_restored():
        yield


def write_plugin(tmp_path, monkeypatch, tag):
    package = tmp_path / f"lab_{tag}"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "parts.py").write_text(textwrap.dedent(PLUGIN).replace("{tag}", tag))
    monkeypatch.syspath_prepend(str(tmp_path))
    return f"lab_{tag}.parts"


def test_the_plugin_parts_compute_what_they_define(tmp_path, monkeypatch):
    module = write_plugin(tmp_path, monkeypatch, "unit")
    from prerl.algo.losses import kl_penalty
    from prerl.algo.objectives import select_samples, warmup_phase

    adv = torch.tensor([[1.0, 1.0], [-2.0, 1.0]])  # the second sample sums to −1: negative
    for knob, expected in (
        ([], [[1.0, 1.0], [-1.0, 0.5]]),  # the declared default, 0.5
        (["+objective.params.negative_weight=0.25"], [[1.0, 1.0], [-0.5, 0.25]]),
    ):
        cfg, _ = to_run(
            compose_config(
                [
                    f"plugins=[{module}]",
                    "algorithm.kl.estimator=abs_unit",
                    "objective.samples=negatives_scaled_unit",
                    *knob,
                ],
                tmp_path,
                "unused",
            )
        )
        check_choices(cfg)  # loads the plug-in: its names are now choices like any other
        weighted, mask = select_samples(warmup_phase(cfg.objective), adv, torch.ones(2, 2))
        assert weighted.tolist() == expected and mask.tolist() == [[1, 1], [1, 1]]
    assert kl_penalty(torch.tensor([0.0, -1.0]), torch.tensor([-0.5, 0.5]), "abs_unit").tolist() == [0.5, 1.5]


def test_a_plugin_knob_check_and_a_missing_plugin_are_reported(tmp_path, monkeypatch):
    module = write_plugin(tmp_path, monkeypatch, "check")
    base = [f"plugins=[{module}]", "objective.samples=negatives_scaled_check"]
    cfg, _ = to_run(compose_config(base + ["+objective.params.negative_weight=2"], tmp_path, "unused"))
    with pytest.raises(ValueError, match=r"^objective.params.negative_weight=2: must be in \[0, 1\]$"):
        check_choices(cfg)
    cfg, _ = to_run(compose_config(base + ["+objective.params.negative_weight=half"], tmp_path, "unused"))
    with pytest.raises(ValueError, match=r"^objective.params.negative_weight='half': must be a number in \[0, 1\]$"):
        check_choices(cfg)
    cfg, _ = to_run(compose_config(base + ["+objective.params.negativ_weight=0.2"], tmp_path, "unused"))
    with pytest.raises(
        ValueError,
        match=r"^objective.params.negativ_weight: no chosen part declares this knob; "
        r"they declare \['negative_weight'\]$",
    ):
        check_choices(cfg)
    cfg, _ = to_run(compose_config(["plugins=[no_such_lab.parts]"], tmp_path, "unused"))
    with pytest.raises(ValueError, match=r"^plugins: cannot import 'no_such_lab.parts' \(ModuleNotFoundError"):
        check_choices(cfg)


def test_a_run_trains_with_a_plugin_kl_estimator_and_sample_weighting(tmp_path, cache_dir, monkeypatch):
    """A real run: warm-up with the plug-in weighting, then GRPO with the plug-in KL in the loss."""
    module = write_plugin(tmp_path, monkeypatch, "run")
    reward_training_with(monkeypatch, coin_grader)
    cfg, resolved = to_run(
        compose_config(
            [
                f"plugins=[{module}]",
                "objective.samples=negatives_scaled_run",
                "+objective.params.negative_weight=0.5",
                "algorithm.kl.placement=loss",
                "algorithm.kl.estimator=abs_run",
                "algorithm.kl.coef=0.1",
                "reincarnation.reset_reference=false",
                "warmup_steps=1",
                "total_steps=2",
                "eval.every_steps=0",
            ],
            tmp_path,
            cache_dir,
        )
    )
    trainer.train(cfg, resolved)
    import importlib

    calls = importlib.import_module(module).CALLS
    assert "samples" in calls and "kl" in calls
    client = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    run = client.search_runs([client.get_experiment_by_name(cfg.tracking.experiment).experiment_id])[0]
    assert run.info.status == "FINISHED" and run.data.params["plugins"] == f"['{module}']"
    kl = {m.step: m.value for m in client.get_metric_history(run.info.run_id, "train/kl_loss")}
    # no KL term in the warm-up; then |log π − log π_ref| > 0: the reference stayed at the base model
    assert kl[1] == 0.0 and kl[2] > 0.0
