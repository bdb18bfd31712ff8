"""What describes a run in MLflow: its name, its tags (method, seed, source, host) and its datasets.

Everything here is read from the resolved config, the Hydra job (when there is one) and the git
checkout; nothing talks to the tracking store, so it is testable without one.
"""

from __future__ import annotations

import json
import platform
import socket
import subprocess
from pathlib import Path
from typing import Any, Mapping, Optional

ROOT = Path(__file__).resolve().parents[2]
PARENT_FILE = "mlflow_parent.json"  # written into a multirun's folder by prerl.tracking.sweep_parent
# MLflow 3 opens an experiment on its GenAI pages unless told it holds model training.
EXPERIMENT_KIND_TAG, EXPERIMENT_KIND = "mlflow.experimentKind", "custom_model_development"
DESCRIPTION_TAG = "mlflow.note.content"  # the experiment's (and a run's) description in the UI
PARENT_TAG = "mlflow.parentRunId"
# Overrides that say where a job runs, not what it computes: left out of run names.
PLACE_KEYS = ("cache_dir", "output_dir", "tracking.", "hydra.", "checkpoint.", "resume", "device", "experiment")


def experiment_description(name: str) -> str:
    """Markdown for the UI (which drops anything in angle brackets)."""
    return (
        f"prerl experiment `{name}`: one run per training job (RL for LLM reasoning in pre-train space). "
        "Runs are named method-phases-seed (`dsrl-nsr_prerl20-grpo-s0`); a multirun or an Optuna study is a "
        "parent run with its jobs nested under it and the best job in its summary. Headline metric: "
        "`eval/test/avg_at_K`. The final policy is the run's model `policy` (the Models column; the registry "
        "takes it): `python evaluate.py model.path=runs:/RUN_ID/policy` re-evaluates it."
    )


def method(cfg: Mapping[str, Any]) -> str:
    """What was trained, in the tables' words: the algorithm alone, the objective alone, or a warm-up then
    the algorithm (DSRL when the warm-up is NSR-PreRL)."""
    warmup, total = int(cfg["warmup_steps"]), int(cfg["total_steps"])
    objective, algorithm = cfg["objective"]["name"], cfg["algorithm"]["name"]
    if warmup <= 0:
        return algorithm
    if warmup >= total:
        return objective
    return "dsrl" if objective == "nsr_prerl" else f"{objective}_warmup"


def base_name(cfg: Mapping[str, Any]) -> str:
    """``dsrl-nsr_prerl20-grpo-s0``, ``grpo-s1``, ``psr_prerl-s0``: method, phases and seed."""
    warmup, total = int(cfg["warmup_steps"]), int(cfg["total_steps"])
    objective, algorithm = cfg["objective"]["name"], cfg["algorithm"]["name"]
    kind = method(cfg)
    if 0 < warmup < total:
        phases = f"{objective}{warmup}-{algorithm}"
        name = f"dsrl-{phases}" if kind == "dsrl" else phases
    else:
        name = kind
    return f"{name}-s{cfg['seed']}"


def distinguishing(overrides: list[str], swept: Optional[list[str]] = None) -> list[str]:
    """The overrides that set what a job computes (``swept``: only those keys), without the ones the base
    name already says (method, phases, seed)."""
    shown = ("seed", "warmup_steps", "objective", "algorithm", "+sweep/method", "sweep/method", "+sweep")
    out = []
    for item in overrides:
        key = item.split("=", 1)[0].lstrip("+~")
        if key in shown or f"+{key}" in shown or key.startswith(PLACE_KEYS):
            continue
        if swept is not None and key not in swept:
            continue
        out.append(item.lstrip("+"))
    return out


def run_name(cfg: Mapping[str, Any], job: Optional[dict] = None) -> str:
    """``tracking.run_name`` when set; else the base name, plus a multirun job's distinguishing overrides."""
    if cfg.get("tracking", {}).get("run_name"):
        return cfg["tracking"]["run_name"]
    name = base_name(cfg)
    if job and job.get("multirun"):
        extra = distinguishing(job["overrides"], job.get("swept"))
        name = " ".join([name, *extra])
    return name


def hydra_job() -> Optional[dict]:
    """The running Hydra job: multirun or not, its task overrides, its sweep folder and what the sweep's
    parent run recorded there (parent run id, swept keys). None outside Hydra (tests, notebooks)."""
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode
    except ImportError:  # pragma: no cover - hydra is a dependency
        return None
    if not HydraConfig.initialized():
        return None
    hc = HydraConfig.get()
    job = {
        "multirun": hc.mode == RunMode.MULTIRUN,
        "overrides": list(hc.overrides.task),
        "sweep_dir": str(hc.sweep.dir) if hc.mode == RunMode.MULTIRUN else None,
    }
    parent = read_parent(str(job["sweep_dir"])) if job["sweep_dir"] else None
    if parent:
        job["parent_run_id"], job["swept"] = parent.get("run_id"), parent.get("swept")
    return job


def read_parent(sweep_dir: str) -> Optional[dict]:
    path = Path(sweep_dir) / PARENT_FILE
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def git(*args: str) -> Optional[str]:
    """git in prerl's checkout; None without one. Installed from its wheel, ROOT is site-packages, which can
    lie inside another repository (a venv in some project's folder): its commit is not prerl's."""
    if not (ROOT / ".git").exists():  # a folder in a checkout, or a worktree's file
        return None
    try:
        done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def source_tags(entry_point: str = "train.py") -> dict[str, str]:
    """MLflow's own source tags (the Source and Version columns of the UI), the checkout's commit and
    whether it had uncommitted changes (``git_dirty``: the commit alone does not reproduce the run)."""
    tags = {"mlflow.source.name": entry_point, "mlflow.source.type": "LOCAL"}
    commit = git("rev-parse", "HEAD")
    if commit:
        status = git("status", "--porcelain", "--untracked-files=no")
        tags |= {"mlflow.source.git.commit": commit, "git_dirty": str(bool(status)).lower()}
        branch = git("rev-parse", "--abbrev-ref", "HEAD")
        if branch and branch != "HEAD":
            tags["mlflow.source.git.branch"] = branch
        remote = git("config", "--get", "remote.origin.url")
        if remote:
            tags["mlflow.source.git.repoURL"] = remote
    return tags


def prerl_version() -> str:
    from importlib import metadata

    try:
        return metadata.version("prerl")
    except metadata.PackageNotFoundError:  # run from a checkout without installing: the pyproject's
        for line in (ROOT / "pyproject.toml").read_text().splitlines():
            if line.startswith("version"):
                return line.split("=", 1)[1].strip().strip('"')
    return "unknown"


def run_tags(cfg: Mapping[str, Any], job: Optional[dict] = None) -> dict[str, str]:
    """Tags for comparing runs: method, seed, source, version, host (the caller adds the device)."""
    import getpass

    tags = {
        "method": method(cfg),
        "seed": str(cfg["seed"]),
        "prerl_version": prerl_version(),
        "host": socket.gethostname() or platform.node(),
        "mlflow.user": getpass.getuser(),
    }
    tags |= source_tags()
    if job and job.get("parent_run_id"):
        tags[PARENT_TAG] = job["parent_run_id"]
    return tags


def identity(config: Mapping[str, Any], tags: Mapping[str, str]) -> tuple[Optional[str], dict[str, str]]:
    """A new run's name and descriptive tags. Training and evaluation configs get both; other callers
    (an analysis logging its own parameters) neither."""
    if "seed" not in config or "objective" not in config:
        return None, {}
    job = hydra_job()
    name = f"evaluate-{tags['model']}" if tags.get("job") == "evaluate" else run_name(config, job)
    return name, run_tags(config, job)


# --- datasets -------------------------------------------------------------------------------------


def dataset_source(name: str, cfg: Mapping[str, Any]) -> dict[str, str]:
    """Where a split came from: a benchmark's file or Hub id, or the mini task's generator and seed."""
    from prerl.data.eval_sets.registry import BENCHMARKS

    data, sets = cfg["data"], cfg["eval"].get("sets", {})
    if name in sets:
        set_cfg = sets[name] or {}
        bench = set_cfg.get("benchmark") or name
        if bench in BENCHMARKS:
            spec = BENCHMARKS[bench]
            local = set_cfg.get("path") or (
                str(Path(cfg["eval"]["data_dir"]) / spec.local_file) if cfg["eval"].get("data_dir") else None
            )
            where = local if local and Path(local).exists() else f"hf://{spec.hub_id} ({spec.split})"
            return {"benchmark": bench, "location": where}
        name = bench  # a split of the data config
    if data["name"] in ("mini", "word_problems"):  # prerl.data.splits.TASKS, named here without importing datasets
        keys = ("seed", "train_problems", "test_problems", "ood_problems")
        return {
            "generator": f"prerl.data.splits.synthetic_splits:{data['name']}",
            "split": name,
            **{f"data.{k}": str(data[k]) for k in keys if k in data},
        }
    return {
        "loader": f"prerl.data.splits.{data['name']}_splits",
        "split": name,
        "location": str(data.get("path") or "hub"),
    }


def dataset_inputs(splits: Mapping[str, Any], cfg: Mapping[str, Any]) -> list:
    """One MLflow ``DatasetInput`` per split the run uses: ``train`` (context ``training``) and every eval
    set (context ``eval``), named ``<data>/<split>``, with a content digest computed by MLflow."""
    import mlflow.data
    from mlflow.data.code_dataset_source import CodeDatasetSource
    from mlflow.entities import DatasetInput, InputTag
    from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

    used = ["train", *cfg["eval"].get("sets", {})]
    out = []
    for split in used:
        if split not in splits:
            continue
        ds = splits[split]
        ds = ds.select_columns([c for c in ("id", "messages", "answer") if c in ds.column_names])
        source = dataset_source(split, cfg)
        name = split if "benchmark" in source else f"{cfg['data']['name']}/{split}"
        from_hf = mlflow.data.from_huggingface  # type: ignore[attr-defined]  # a lazily loaded submodule
        dataset = from_hf(ds, source=CodeDatasetSource(source), name=name)
        context = "training" if split == "train" else "eval"
        out.append(DatasetInput(dataset._to_mlflow_entity(), tags=[InputTag(MLFLOW_DATASET_CONTEXT, context)]))
    return out


def sweep_metric(eval_cfg: Any) -> str:
    """The metric a sweep ranks its jobs by (an Optuna study optimises it): the final Avg@K on the first
    eval set, ``eval/<set>/avg_at_<K>``. ``eval_cfg`` is an ``EvalConfig`` or its ``DictConfig``."""
    first = next(iter(eval_cfg.sets), None)
    return f"eval/{first}/avg_at_{eval_cfg.samples_per_prompt}"
