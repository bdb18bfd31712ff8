"""Train one run (or a sweep with -m): ``python train.py [group=option ...] [key=value ...]`` from a checkout,
``prerl-train ...`` (or ``python -m prerl.commands.train ...``) where prerl is installed from its wheel.

``--help`` lists every option with its help (prerl/config/docs.py). A bad value is answered in one line
before torch, transformers or MLflow is imported (prerl/launch/cli.py). ``<overrides> --plan [--ranks N]
[--device-memory 80GiB]`` prints the memory plan of each phase and loads nothing (prerl/plan); a run whose
plan exceeds its device is refused before any weight loads. Outputs (``outputs/``, ``multirun/``,
``mlflow.db``, ``.cache/prerl``) go to the current working directory, whichever way it is started.
"""

import logging
import sys
from typing import cast

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from prerl.config.docs import CONF, register_help_resolver
from prerl.config.schema import register_configs
from prerl.launch.cli import exit_on_config_error, preflight, to_train_config

register_configs()
register_help_resolver()
log = logging.getLogger(__name__)


# Hydra names the job after this module ("train": outputs/.../train.log) and reads the configs from CONF,
# the checkout's conf/ or the installed copy.
@hydra.main(version_base="1.3", config_path=str(CONF), config_name="config")
def train_job(cfg: DictConfig) -> float:
    with exit_on_config_error():  # a multirun's job, or a value only Hydra's runtime knows
        run_cfg = to_train_config(cfg, HydraConfig.get().runtime.choices)
        from prerl import plan  # imports torch: after the cheap checks

        plan.check(run_cfg)  # the memory plan, before any weight loads (plan.check=false skips it)
    from prerl.tracking.completed import MULTIRUN, config_hash, final_eval, finished_run  # heavy: after the check
    from prerl.train.trainer import sweep_value, train

    resolved = cast(dict, OmegaConf.to_container(cfg, resolve=True))  # a DictConfig's is a dict
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


def main() -> None:
    """The command line (sys.argv): ``--plan``, else the one-line check of a single run, then Hydra."""
    if "--plan" in sys.argv[1:]:
        from prerl.plan.cli import main as print_plan

        sys.exit(print_plan(sys.argv[1:]))
    preflight(sys.argv[1:])
    train_job()


if __name__ == "__main__":
    main()
