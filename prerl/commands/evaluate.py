"""Evaluate a policy on benchmarks: ``python evaluate.py [model.path=CHECKPOINT_OR_HUB_NAME] [eval=math6|ood] ...``
from a checkout, ``prerl-evaluate ...`` (or ``python -m prerl.commands.evaluate ...``) where prerl is installed.

Same config tree as train.py. Examples:
    python evaluate.py                                           # the mini model on the mini test sets
    python evaluate.py model.path=outputs/DATE/TIME/final_policy # a saved checkpoint
    python evaluate.py model.path=runs:/<run_id>/policy          # the final policy a training run logged to MLflow
    python evaluate.py model=qwen3_4b eval=math6                 # the paper's math benchmarks (GPU)
    python evaluate.py model=micro eval=math6 rollout=oracle eval.data_dir=DATA_DIR  # check loaders + scorers on local copies
"""

import sys
from typing import cast

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from prerl.config.docs import CONF, register_help_resolver
from prerl.config.schema import register_configs
from prerl.launch.cli import exit_on_config_error, preflight, to_train_config

register_configs()
register_help_resolver()  # conf/config.yaml's --help template


@hydra.main(version_base="1.3", config_path=str(CONF), config_name="config")  # the job is named "evaluate"
def evaluate_job(cfg: DictConfig) -> float:
    import mlflow

    from prerl.eval.policy_evaluation import run
    from prerl.tracking.tracker import tracking_uri

    with exit_on_config_error():  # one line, as train.py (prerl/launch/cli.py)
        run_cfg = to_train_config(cfg, HydraConfig.get().runtime.choices)
    mlflow.set_tracking_uri(tracking_uri(run_cfg.tracking))  # where model.path=runs:/... is downloaded from
    metrics = run(run_cfg, cast(dict, OmegaConf.to_container(cfg, resolve=True)))  # a DictConfig's is a dict
    for key, value in sorted(metrics.items()):
        if "avg_at" in key or key.endswith("pass_at_1") or "samples_per_s" in key:
            print(f"{key}\t{value:.4f}")
    return metrics.get(f"eval/average/avg_at_{run_cfg.eval.samples_per_prompt}", float("nan"))


def main() -> None:
    """The command line (sys.argv): the one-line check of a single run, then Hydra."""
    preflight(sys.argv[1:])
    evaluate_job()


if __name__ == "__main__":
    main()
