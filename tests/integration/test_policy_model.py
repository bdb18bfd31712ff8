"""The final policy as an MLflow model (prerl/tracking/policy_model.py): a model of its run in MLflow's transformers
flavour, loaded back bit for bit from ``runs:/<run_id>/policy`` and from the model registry, logged
without opening a connection, and logged once when an upload is retried after an outage."""

import shutil
import socket
from pathlib import Path

import mlflow
import pytest
import torch
from helpers import coin_grader, compose_config, to_run
from mlflow.entities import LoggedModelStatus
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from safetensors.torch import load_file

import prerl.train.trainer as trainer
from prerl.config.schema import MiniModelConfig, ModelConfig, TrackingConfig
from prerl.models.loading import load_policy, model_path
from prerl.tracking import policy_model
from prerl.tracking.tracker import Tracker
from prerl.train.trainer import Experiment


def weights(folder) -> dict[str, torch.Tensor]:
    return load_file(str(Path(folder) / "model.safetensors"))


def assert_same_weights(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for name in a:
        assert a[name].dtype == b[name].dtype and torch.equal(a[name], b[name]), name


@pytest.fixture(scope="module")
def trained(tmp_path_factory, cache_dir):
    """A micro run of the smoke preset (4 updates, rewards from a seeded coin so that the weights move)."""
    folder = tmp_path_factory.mktemp("trained")
    cfg, resolved = to_run(compose_config([], folder, cache_dir))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(
            Experiment, "reward", lambda self, rollout, problems: torch.tensor(coin_grader(rollout.texts, problems))
        )
        trainer.train(cfg, resolved)
    client = MlflowClient(cfg.tracking.uri)
    (run,) = client.search_runs([client.get_experiment_by_name("prerl-smoke").experiment_id])
    return cfg, client, run, folder / "out" / "final_policy"


def test_the_final_policy_is_a_transformers_model_of_its_run(trained):
    cfg, client, run, final = trained
    run_id = run.info.run_id
    (output,) = run.outputs.model_outputs  # what the runs table's Models column lists
    assert output.step == cfg.total_steps
    (model,) = mlflow.search_logged_models(
        experiment_ids=[run.info.experiment_id], filter_string=f"source_run_id = '{run_id}'", output_format="list"
    )
    assert model.model_id == output.model_id and model.name == "policy" and model.status == LoggedModelStatus.READY
    assert model.params == run.data.params  # the resolved config travels with the model
    final_metrics = {m.key for m in model.metrics if m.step == cfg.total_steps}
    assert {"eval/test/avg_at_2", "train/loss"} <= final_metrics  # the final step's metrics, not step 0's
    downloaded = Path(mlflow.artifacts.download_artifacts(f"runs:/{run_id}/policy"))
    flavour = mlflow.models.Model.load(str(downloaded / "MLmodel")).flavors["transformers"]
    assert flavour["task"] == "text-generation" and flavour["torch_dtype"] == "torch.float32"
    pipeline = mlflow.transformers.load_model(f"runs:/{run_id}/policy")  # MLflow's own loader takes it
    assert pipeline.task == "text-generation"
    state, saved = pipeline.model.state_dict(), weights(final)  # the state adds the tied head
    assert_same_weights({name: state[name] for name in saved}, saved)
    assert (downloaded / "requirements.txt").read_text().split() == [
        f"mlflow=={mlflow.__version__}",
        *policy_model.pip_requirements(),
    ]


def test_evaluate_loads_the_trained_weights_and_tokenizer_from_the_run(trained, tmp_path, cache_dir):
    cfg, client, run, final = trained
    base = weights(model_path(cfg.model, cache_dir))
    assert any(not torch.equal(base[k], v) for k, v in weights(final).items())  # the policy trained
    uri = f"runs:/{run.info.run_id}/policy"  # what evaluate.py model.path= takes (prerl.models.loading.model_path)
    loaded = model_path(ModelConfig(path=uri), str(tmp_path))
    assert Path(loaded) == tmp_path / "mlflow" / run.info.run_id / "policy"
    assert_same_weights(weights(loaded), weights(final))
    model, tokenizer = load_policy(ModelConfig(path=uri), str(tmp_path), torch.device("cpu"))
    reference, reference_tokenizer = load_policy(ModelConfig(path=str(final)), str(tmp_path), torch.device("cpu"))
    assert_same_weights(model.state_dict(), reference.state_dict())
    text = "Compute 3+4. <think>"
    assert tokenizer(text).input_ids == reference_tokenizer(text).input_ids
    assert tokenizer.chat_template == reference_tokenizer.chat_template


def test_a_registered_policy_loads_by_version_and_by_alias(trained, tmp_path):
    cfg, client, run, final = trained
    first = mlflow.register_model(f"runs:/{run.info.run_id}/policy", "prerl-policy")
    # a second policy: the trained one with every weight shifted, logged to a run of its own
    other = tmp_path / "other"
    shutil.copytree(final, other)
    from safetensors.torch import save_file

    save_file(
        {k: v + 1 for k, v in weights(final).items()}, str(other / "model.safetensors"), metadata={"format": "pt"}
    )
    tracker = Tracker(TrackingConfig(uri=cfg.tracking.uri, experiment="registry"))
    tracker.start({"output_dir": str(tmp_path)}, tags={})
    tracker.log_policy(other, step=0)
    tracker.finish()
    second = mlflow.register_model(f"runs:/{tracker.run_id}/policy", "prerl-policy")
    assert (int(first.version), int(second.version)) == (1, 2)

    cache = str(tmp_path / "cache")
    assert_same_weights(weights(model_path(ModelConfig(path="models:/prerl-policy/1"), cache)), weights(final))
    assert_same_weights(weights(model_path(ModelConfig(path="models:/prerl-policy/2"), cache)), weights(other))
    registry = MlflowClient(cfg.tracking.uri)
    registry.set_registered_model_alias("prerl-policy", "best", "1")
    assert_same_weights(weights(model_path(ModelConfig(path="models:/prerl-policy@best"), cache)), weights(final))
    registry.set_registered_model_alias("prerl-policy", "best", "2")  # the alias moves: the cache follows
    assert_same_weights(weights(model_path(ModelConfig(path="models:/prerl-policy@best"), cache)), weights(other))
    assert_same_weights(weights(model_path(ModelConfig(path="models:/prerl-policy/latest"), cache)), weights(other))
    with pytest.raises(ValueError, match=r"^model.path=models:/prerl-policy@nobody: .*"):
        model_path(ModelConfig(path="models:/prerl-policy@nobody"), cache)


def test_logging_the_policy_opens_no_connection(tmp_path, cache_dir, monkeypatch):
    """Nothing is looked up on the Hugging Face Hub (model card, licence, task) and no requirement is
    inferred, also with the Hub's offline switch off: only the store is contacted (here a file)."""
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    opened = []

    def refuse(self, address):
        opened.append(address)
        raise OSError(f"no network in this test: {address}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    folder = model_path(ModelConfig(mini=MiniModelConfig.micro()), cache_dir)
    policy = tmp_path / "final_policy"
    shutil.copytree(folder, policy)
    tracker = Tracker(TrackingConfig(uri=f"sqlite:///{tmp_path / 'm.db'}", experiment="offline"))
    tracker.start({"output_dir": str(tmp_path)}, tags={})
    tracker.log_policy(policy, step=0)
    tracker.finish()
    assert opened == []
    assert_same_weights(
        weights(model_path(ModelConfig(path=f"runs:/{tracker.run_id}/policy"), str(tmp_path))), weights(policy)
    )


def test_an_upload_cut_by_an_outage_is_retried_into_one_model(tmp_path, cache_dir, monkeypatch):
    """The server goes away after the model was created, during its upload: the item stays queued, and
    the retry replaces the half-logged model, so that ``runs:/<run_id>/policy`` names one complete model."""
    policy = Path(model_path(ModelConfig(mini=MiniModelConfig.micro()), cache_dir))
    uri = f"sqlite:///{tmp_path / 'm.db'}"
    tracker = Tracker(TrackingConfig(uri=uri, experiment="outage"))
    tracker.start({"output_dir": str(tmp_path)}, tags={})
    upload, calls = MlflowClient.log_model_artifacts, []

    def cut_once(self, model_id, local_dir):
        calls.append(model_id)
        if len(calls) == 1:
            raise MlflowException("API request to http://127.0.0.1:5/api/2.0/mlflow-artifacts failed with exception")
        return upload(self, model_id, local_dir)

    monkeypatch.setattr(MlflowClient, "log_model_artifacts", cut_once)
    tracker.log_policy(policy, step=0)
    assert [item["kind"] for item in tracker.box.items] == ["model"]  # queued, not lost
    assert tracker.box.flush(force=True)
    tracker.finish()
    client = MlflowClient(uri)
    run = client.get_run(tracker.run_id)
    live = client.search_logged_models([run.info.experiment_id], filter_string=f"source_run_id = '{tracker.run_id}'")
    assert len(calls) == 2 and [m.model_id for m in live] == [calls[1]]
    assert calls[1] in {o.model_id for o in run.outputs.model_outputs}
    loaded = model_path(ModelConfig(path=f"runs:/{tracker.run_id}/policy"), str(tmp_path))
    assert_same_weights(weights(loaded), weights(policy))


def test_the_same_policy_sent_again_stays_one_model(tmp_path, cache_dir):
    """A relaunched run sends its queue, then saves the final checkpoint's policy again: one model. A
    policy of another step replaces it (``runs:/`` finds one)."""
    uri = f"sqlite:///{tmp_path / 'm.db'}"
    tracker = Tracker(TrackingConfig(uri=uri, experiment="again"))
    tracker.start({"output_dir": str(tmp_path)}, tags={})
    policy = Path(model_path(ModelConfig(mini=MiniModelConfig.micro()), cache_dir))
    tracker.log_policy(policy, step=4)
    tracker.log_policy(policy, step=4)
    client = MlflowClient(uri)
    (first,) = client.get_run(tracker.run_id).outputs.model_outputs
    tracker.log_policy(policy, step=6)
    tracker.finish()
    experiment = client.get_run(tracker.run_id).info.experiment_id
    (live,) = client.search_logged_models([experiment], filter_string=f"source_run_id = '{tracker.run_id}'")
    outputs = {o.model_id: o.step for o in client.get_run(tracker.run_id).outputs.model_outputs}
    assert live.model_id != first.model_id and outputs == {first.model_id: 4, live.model_id: 6}


def test_the_model_is_filed_under_its_runs_experiment_whatever_the_fluent_one(tmp_path, cache_dir):
    """A resumed run does not set the fluent API's experiment; MLflow files a new model under that one,
    where ``runs:/`` (which searches the run's experiment) would not find it."""
    uri = f"sqlite:///{tmp_path / 'm.db'}"
    tracker = Tracker(TrackingConfig(uri=uri, experiment="mine"))
    tracker.start({"output_dir": str(tmp_path)}, tags={})
    mlflow.set_experiment("someone-else")
    tracker.log_policy(Path(model_path(ModelConfig(mini=MiniModelConfig.micro()), cache_dir)), step=0)
    tracker.finish()
    client = MlflowClient(uri)
    run = client.get_run(tracker.run_id)
    (output,) = run.outputs.model_outputs
    assert client.get_logged_model(output.model_id).experiment_id == run.info.experiment_id


def test_a_policy_logged_as_plain_artifacts_by_older_versions_still_loads(tmp_path, cache_dir):
    policy = model_path(ModelConfig(mini=MiniModelConfig.micro()), cache_dir)
    client = MlflowClient(f"sqlite:///{tmp_path / 'm.db'}")
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'm.db'}")
    run = client.create_run(client.create_experiment("old"))
    client.log_artifacts(run.info.run_id, policy, "policy")  # what prerl logged before the model
    loaded = model_path(ModelConfig(path=f"runs:/{run.info.run_id}/policy"), str(tmp_path))
    assert_same_weights(weights(loaded), weights(policy))


def test_a_uri_that_names_no_policy_is_a_one_line_error(tmp_path):
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'm.db'}")
    client = MlflowClient()
    run = client.create_run(client.create_experiment("none"))
    (tmp_path / "sklearn").mkdir()
    (tmp_path / "sklearn" / "MLmodel").write_text("flavors:\n  sklearn:\n    pickled_model: model.pkl\n")
    client.log_artifacts(run.info.run_id, str(tmp_path / "sklearn"), "clf")
    client.log_text(run.info.run_id, "hello", "notes/readme.txt")
    for path, message in [
        ("clf", r"an MLflow model without the transformers flavour \(sklearn\)"),
        ("notes", "neither an MLflow model"),
        ("policy", "cannot download it"),
    ]:
        with pytest.raises(ValueError, match=rf"^model.path=runs:/{run.info.run_id}/{path}: {message}") as err:
            model_path(ModelConfig(path=f"runs:/{run.info.run_id}/{path}"), str(tmp_path / "cache"))
        assert "\n" not in str(err.value)
