"""Train one run (or a sweep with -m): python train.py [group=option ...] [key=value ...].

``python train.py --help`` lists every option with its help (prerl/config_docs.py). A bad value is
answered in one line before torch, transformers or MLflow is imported (prerl/cli.py). ``python
train.py <overrides> --plan [--ranks N] [--device-memory 80GiB]`` prints the memory plan of each phase
and loads nothing (prerl/plan); a run whose plan exceeds its device is refused before any weight loads.
"""

import logging
import sys

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from prerl.cli import exit_on_config_error, preflight, to_train_config
from prerl.config import register_configs
from prerl.config_docs import register_help_resolver

register_configs()
register_help_resolver()
log = logging.getLogger(__name__)


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> float:
    with exit_on_config_error():  # a multirun's job, or a value only Hydra's runtime knows
        run_cfg = to_train_config(cfg, HydraConfig.get().runtime.choices)
        from prerl import plan  # imports torch: after the cheap checks

        plan.check(run_cfg)  # the memory plan, before any weight loads (plan.check=false skips it)
    from prerl.completed import MULTIRUN, config_hash, final_eval, finished_run  # heavy: after the check
    from prerl.trainer import sweep_value, train

    resolved = OmegaConf.to_container(cfg, resolve=True)
    run_cfg.tracking.tags["config_hash"] = digest = config_hash(resolved)
    multirun = HydraConfig.get().mode == RunMode.MULTIRUN
    if multirun:  # any multirun becomes a table: its jobs share a sweep id (+sweep=NAME also names it)
        run_cfg.tracking.tags.setdefault("sweep", MULTIRUN)
        run_cfg.tracking.tags["sweep_id"] = HydraConfig.get().sweep.dir
    if run_cfg.tracking.skip_complete and multirun:
        done = finished_run(run_cfg.tracking, digest)
        if done is not None:  # a relaunched sweep: this job already finished
            log.info("skipped: config_hash %s already finished as MLflow run %s", digest, done.info.run_id)
            return sweep_value(run_cfg, final_eval(done))
    return sweep_value(run_cfg, train(run_cfg, resolved))


if __name__ == "__main__":
    if "--plan" in sys.argv[1:]:
        from prerl.plan.cli import main as print_plan

        sys.exit(print_plan(sys.argv[1:]))
    preflight(sys.argv[1:])
    main()
