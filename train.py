"""Train one run (or a sweep with -m): python train.py [group=option ...] [key=value ...]."""

import hydra
from omegaconf import DictConfig, OmegaConf

from prerl.config import register_configs

register_configs()


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> float:
    from prerl.trainer import headline, train

    run_cfg = OmegaConf.to_object(cfg)  # builds the dataclasses: types and values are checked here
    return headline(run_cfg, train(run_cfg, OmegaConf.to_container(cfg, resolve=True)))


if __name__ == "__main__":
    main()
