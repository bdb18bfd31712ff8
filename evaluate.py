"""Evaluate a policy on benchmarks: python evaluate.py [model.path=CHECKPOINT_OR_HUB_NAME] [eval=math6|ood] ...

Same config tree as train.py. Examples:
    python evaluate.py                                           # the mini model on the mini test sets
    python evaluate.py model.path=outputs/DATE/TIME/final_policy # a saved checkpoint
    python evaluate.py model.path=runs:/<run_id>/policy          # the final policy a training run logged to MLflow
    python evaluate.py model=qwen3_4b eval=math6                 # the paper's math benchmarks (GPU)
    python evaluate.py model=micro eval=math6 rollout=oracle eval.data_dir=../shared/data  # check loaders + scorers
"""

import hydra
from omegaconf import DictConfig, OmegaConf

from prerl.config import register_configs

register_configs()


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> float:
    import mlflow

    from prerl.eval_runner import run
    from prerl.tracking import tracking_uri

    run_cfg = OmegaConf.to_object(cfg)  # builds the dataclasses: types and values are checked here
    mlflow.set_tracking_uri(tracking_uri(run_cfg.tracking))  # where model.path=runs:/... is downloaded from
    metrics = run(run_cfg, OmegaConf.to_container(cfg, resolve=True))
    for key, value in sorted(metrics.items()):
        if "avg_at" in key or key.endswith("pass_at_1") or "samples_per_s" in key:
            print(f"{key}\t{value:.4f}")
    return metrics.get(f"eval/average/avg_at_{run_cfg.eval.samples_per_problem}", float("nan"))


if __name__ == "__main__":
    main()
