"""What the analyses share: load a policy by name, folder or training checkpoint, sample responses on an
eval set, MLflow."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from omegaconf import OmegaConf

from prerl.config.schema import DataConfig, ModelConfig, RolloutConfig, TrackingConfig
from prerl.data import splits as data_lib
from prerl.models.loading import context_token_id, load_policy
from prerl.models.mini_model import VARIANTS
from prerl.rollout.hf import HFEngine
from prerl.scoring import Grader
from prerl.tracking.tracker import Tracker

CONF = Path(__file__).resolve().parents[1] / "conf"


def group_config(group: str, name: str, schema: type):
    """``conf/<group>/<name>.yaml`` as its schema's dataclass (what ``group=name`` gives train.py)."""
    path = CONF / group / f"{name}.yaml"
    merged = OmegaConf.merge(OmegaConf.structured(schema), OmegaConf.load(path))
    return OmegaConf.to_object(merged)


def model_config(spec: str) -> ModelConfig:
    """``mini`` / ``micro`` / ``mini_styles`` (the shipped base models), a model of ``conf/model`` by name
    (``smollm2_135m``: the real model, from its GGUF) or a checkpoint folder / Hub id."""
    if spec in VARIANTS:
        return ModelConfig(mini=VARIANTS[spec]())
    if "/" not in spec and (CONF / "model" / f"{spec}.yaml").exists():
        return group_config("model", spec, ModelConfig)
    return ModelConfig(path=spec, mini=None)


def data_config(name: str | None) -> DataConfig:
    """A task of ``conf/data`` by name (``word_problems``); None: the schema's default, the mini task."""
    return group_config("data", name, DataConfig) if name else DataConfig()


def run_model_config(run_dir: str | Path) -> ModelConfig:
    """The model a training run was started from, read from its ``.hydra/config.yaml``."""
    saved = OmegaConf.load(Path(run_dir) / ".hydra" / "config.yaml").model
    return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(ModelConfig), saved))


def short_name(spec: str) -> str:
    """A file-name-safe label: ``outputs/<run>/final_policy`` -> ``<run>``, ``mini`` -> ``mini``,
    ``outputs/<run>/checkpoints/step_000020.pt`` -> ``<run>_step20``."""
    path = Path(spec.rstrip("/"))
    if path.suffix == ".pt":
        return f"{path.parent.parent.name}_step{int(''.join(c for c in path.stem if c.isdigit()) or 0)}"
    return (path.parent.name if path.name == "final_policy" else path.name) or "model"


@dataclass
class Policy:
    model: torch.nn.Module
    tokenizer: object
    context_id: int
    name: str
    chat_template_kwargs: dict | None = None  # model.chat_template_kwargs: how training renders prompts


def load(spec: str, cache_dir: str = ".cache/prerl", device: str = "cpu") -> Policy:
    """A policy: ``mini`` / ``micro``, a folder or Hub id, or a training checkpoint
    (``outputs/<run>/checkpoints/step_*.pt``: the run's starting model with the checkpointed weights)."""
    checkpoint = Path(spec).suffix == ".pt"
    cfg = run_model_config(Path(spec).parent.parent) if checkpoint else model_config(spec)
    model, tokenizer = load_policy(cfg, cache_dir, torch.device(device))
    if checkpoint:
        model.load_state_dict(torch.load(spec, map_location=device, weights_only=False)["model"])
    return Policy(
        model.eval(), tokenizer, context_token_id(tokenizer, cfg.context_token), spec, cfg.chat_template_kwargs
    )


@dataclass
class Samples:
    """Sampled responses on an eval set: response ``i`` answers problem ``group[i]``."""

    prompt_ids: list[list[int]]
    response_ids: list[list[int]]
    group: list[int]
    texts: list[str]
    correct: list[float]
    questions: list[str]

    def to_jsonl(self, path: str | Path) -> None:
        with open(path, "w") as f:
            for i, text in enumerate(self.texts):
                f.write(
                    json.dumps(
                        {
                            "problem": self.group[i],
                            "question": self.questions[self.group[i]],
                            "response": text,
                            "correct": self.correct[i],
                        }
                    )
                    + "\n"
                )


def eval_split(split: str, problems: int | None, data_dir: str | None = None, data: DataConfig | None = None):
    """The first ``problems`` rows of a benchmark (e.g. ``amc23``, from ``data_dir`` when it holds a copy,
    else the Hub) or of a split of the data config (the mini task's ``test``, ``ood``, ``train``)."""
    from prerl.data.eval_sets import BENCHMARKS, load_benchmark

    if split in BENCHMARKS:
        local = Path(data_dir) / BENCHMARKS[split].local_file if data_dir else None
        return load_benchmark(split, str(local) if local and local.exists() else None, problems)
    splits = data_lib.load_splits(data or DataConfig())
    if split not in splits:
        raise ValueError(f"eval set {split!r}: choose a benchmark {sorted(BENCHMARKS)} or a split {sorted(splits)}")
    ds = splits[split]
    return ds.select(range(min(problems or len(ds), len(ds))))


@torch.no_grad()
def sample(
    policy: Policy,
    split: str = "test",
    problems: int | None = 32,
    samples_per_prompt: int = 8,
    max_new_tokens: int = 96,
    temperature: float = 1.0,
    seed: int = 0,
    data_dir: str | None = None,
    data: DataConfig | None = None,
) -> Samples:
    """``samples_per_prompt`` responses to each of the first ``problems`` problems of ``split`` of the
    task ``data`` (default: the mini task), each scored by its set's scorer as training scores it."""
    torch.manual_seed(seed)
    rows = data_lib.render(eval_split(split, problems, data_dir, data), policy.tokenizer, policy.chat_template_kwargs)
    engine = HFEngine(policy.model, policy.tokenizer, RolloutConfig())
    out = engine.generate(rows["prompt_ids"], samples_per_prompt, temperature, 1.0, max_new_tokens)
    questions = [m[-1]["content"] for m in rows["messages"]]
    correct = Grader.of(rows)(out.texts, out.group)
    return Samples(out.prompt_ids, out.response_ids, out.group, out.texts, correct, questions)


def read_responses(path: str | Path) -> list[str]:
    """Responses saved as JSONL (a ``response`` field per line) or as an MLflow table
    (``samples/*.json`` of a training run: ``{"columns": [...], "data": [[...], ...]}``)."""
    text = Path(path).read_text()
    if str(path).endswith(".jsonl"):
        return [json.loads(line)["response"] for line in text.splitlines() if line.strip()]
    table = json.loads(text)
    if isinstance(table, dict) and "columns" in table:
        column = table["columns"].index("response")
        return [row[column] for row in table["data"]]
    if isinstance(table, dict) and "response" in table:
        return list(table["response"])
    raise ValueError(f"{path}: expected JSONL with a 'response' field or an MLflow table with a 'response' column")


def open_run(experiment: str, run_name: str | None, params: dict, uri: str | None = None) -> Tracker:
    """An MLflow run for an analysis, in the project's store unless ``uri`` says otherwise."""
    tracker = Tracker(TrackingConfig(uri=uri, experiment=experiment, run_name=run_name))
    tracker.start(params, tags={"analysis": experiment})
    return tracker
