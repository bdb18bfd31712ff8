"""The final policy as an MLflow model: logged through MLflow's transformers flavour, so that it is a
model of its run (the runs table's Models column, ``runs:/<run_id>/policy``) that the model registry
takes, and read back from any URI that names it as a folder ``from_pretrained`` loads.

A logged model's folder (MLflow's transformers flavour): ``MLmodel`` (flavours, task, dtype),
``model/`` (``config.json``, ``generation_config.json``, ``model.safetensors``),
``components/tokenizer/`` (the tokenizer's files), the pip requirements and a model card.
Policies that older prerl versions logged as plain artifacts (the ``from_pretrained`` folder itself at
``runs:/<run_id>/policy``) still load.
"""

from __future__ import annotations

import shutil
from importlib.metadata import version
from pathlib import Path

from packaging.version import Version

NAME = "policy"  # the logged model's name: runs:/<run_id>/policy
TASK = "text-generation"  # the flavour's pipeline task (what `mlflow.transformers.load_model` builds)
FLAVOUR = "transformers"
COMPONENTS = "components"  # where the flavour keeps the tokenizer: components/tokenizer/
PINNED = ("torch", "transformers")


def pip_requirements() -> list[str]:
    """The versions that trained the policy, given to MLflow so that it infers nothing: its inference
    would load the model again in a subprocess, and its default list imports torchvision. A local
    version label (``2.13.0+cpu``) is dropped, as no index outside PyTorch's serves it."""
    return [f"{name}=={Version(version(name)).public}" for name in PINNED]


def model_card(run_id: str):
    """The card stored with the model. Given here, MLflow does not look one up on the Hugging Face Hub
    (the logging opens no connection)."""
    from huggingface_hub import ModelCard

    return ModelCard(
        "---\nlibrary_name: transformers\npipeline_tag: text-generation\ntags:\n- prerl\n---\n\n"
        f"# prerl policy\n\nThe final policy of the MLflow run `{run_id}`, trained by prerl. The run's "
        "parameters are its resolved config; `python evaluate.py model.path=runs:/RUN_ID/policy` "
        "evaluates it.\n"
    )


def log_policy_model(client, run_id: str, folder: str | Path, step: int, name: str = NAME) -> str:
    """Log the saved policy ``folder`` (weights, config, tokenizer) as the model ``name`` of the run
    ``run_id``, in its outputs at ``step`` (the model carries that step's metrics); the model's id.

    Logging is idempotent, as the outbox needs: a complete model of that name already in the run at
    ``step`` is the same policy (a relaunch sends its queue, then saves the final checkpoint's policy
    again) and is kept; any other (an upload an outage cut short) is deleted first, so that
    ``runs:/<run_id>/<name>`` resolves to one model. The run's experiment becomes the fluent API's
    experiment (MLflow files a new model under it, not under the run's), and ``client``'s store its
    tracking URI, as ``Tracker`` sets both."""
    import mlflow
    import mlflow.transformers
    from mlflow.entities import LoggedModelStatus
    from transformers import AutoModelForCausalLM, AutoTokenizer

    run = client.get_run(run_id)
    experiment_id = run.info.experiment_id
    steps = {output.model_id: output.step for output in run.outputs.model_outputs} if run.outputs else {}
    for logged in client.search_logged_models(
        experiment_ids=[experiment_id], filter_string=f"name = '{name}' AND source_run_id = '{run_id}'"
    ):
        if logged.status == LoggedModelStatus.READY and steps.get(logged.model_id) == step:
            return logged.model_id
        client.delete_logged_model(logged.model_id)
    # An absolute path as the model's name_or_path: never a Hub repo id that MLflow would look up.
    path = str(Path(folder).resolve())
    model = AutoModelForCausalLM.from_pretrained(path, dtype="auto")  # as saved: the same tensors
    tokenizer = AutoTokenizer.from_pretrained(path)
    mlflow.set_tracking_uri(client.tracking_uri)
    mlflow.set_experiment(experiment_id=experiment_id)
    info = mlflow.transformers.log_model(
        {"model": model, "tokenizer": tokenizer},
        name=name,
        task=TASK,
        run_id=run_id,
        step=step,
        model_card=model_card(run_id),
        pip_requirements=pip_requirements(),
    )
    return info.model_id


def pretrained_folder(downloaded: Path, uri: str) -> Path:
    """The folder ``from_pretrained`` loads (weights, config and tokenizer) inside what ``uri``
    downloaded to ``downloaded``: the flavour's ``model/`` with the tokenizer's files copied in, or the
    downloaded folder itself when it is a plain policy folder."""
    if (downloaded / "MLmodel").exists():
        from mlflow.models import Model

        flavours = Model.load(str(downloaded / "MLmodel")).flavors
        if FLAVOUR not in flavours:
            raise ValueError(
                f"model.path={uri}: an MLflow model without the {FLAVOUR} flavour ({', '.join(flavours)}); "
                "prerl loads policies logged with mlflow.transformers"
            )
        conf = flavours[FLAVOUR]
        weights = downloaded / conf.get("model_binary", "model")
        if not (weights / "config.json").exists():
            raise ValueError(
                f"model.path={uri}: the MLflow model holds no weights (logged with save_pretrained=False?); "
                "log it with its weights"
            )
        for component in conf.get("components", []):
            for file in (downloaded / COMPONENTS / component).glob("*"):
                if file.is_file() and not (weights / file.name).exists():
                    shutil.copy2(file, weights / file.name)
        return weights
    if (downloaded / "config.json").exists():
        return downloaded
    raise ValueError(f"model.path={uri}: neither an MLflow model (MLmodel) nor a model config.json in {downloaded}")


def cache_key(uri: str) -> str:
    """Where the policy ``uri`` names is cached under ``cache_dir/mlflow/``. What a run logged, a model
    id and a registered version never change; an alias or ``latest`` moves, so it is resolved to the
    version it names now (``models:/prerl@best`` -> ``prerl/3``)."""
    if uri.startswith("models:/"):
        from mlflow.store.artifact.utils.models import get_model_name_and_version
        from mlflow.tracking import MlflowClient

        return "/".join(map(str, get_model_name_and_version(MlflowClient(), uri)))
    return uri.split(":/", 1)[1].strip("/")
