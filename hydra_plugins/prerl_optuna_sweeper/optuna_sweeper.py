"""A Hydra sweeper driving current Optuna by ask/tell, with a persistent (SQLite) study that resumes.

    python train.py -m hydra/sweeper=optuna hydra.sweeper.n_trials=20 \
        'optim.lr=tag(log, interval(1e-6, 1e-4))' 'warmup_steps=range(0, 41, 5)' 'objective=choice(nsr_prerl,nsr_rl)'

Sweep overrides become the search space — ``choice(...)`` categorical, ``range(a, b, s)`` an integer
(or stepped float) range with ``b`` excluded as in Python, ``interval(a, b)`` a float (an int when
both ends are ints), ``tag(log, interval(...))`` log-uniform; plain overrides are passed to every
trial. Each trial is one job of the configured launcher; its value is what the task returns
(``train.py``: the final Avg@K of the first eval set), maximised by default.

``n_trials`` is the number of *completed* trials the study should hold: launching the same command
again loads the study from ``storage`` and runs only what is missing. Trials left RUNNING by an
interrupted launch are marked failed and their parameters queued again (a single driver per study
is assumed). Written beside the sweep: ``optimization_results.yaml`` with the best trial so far.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional

import optuna
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, Override, RangeSweep
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState

log = logging.getLogger(__name__)


def distribution(override: Override) -> BaseDistribution:
    """The Optuna distribution of one sweep override."""
    sweep, log_scale = override.value(), "log" in getattr(override.value(), "tags", set())
    if isinstance(sweep, ChoiceSweep):
        return CategoricalDistribution([v for v in override.sweep_iterator()])
    if isinstance(sweep, RangeSweep):
        values = list(override.sweep_iterator())
        if all(isinstance(v, int) for v in values):
            return IntDistribution(values[0], values[-1], step=int(sweep.step))
        return FloatDistribution(float(values[0]), float(values[-1]), step=float(sweep.step))
    if isinstance(sweep, IntervalSweep):
        if isinstance(sweep.start, int) and isinstance(sweep.end, int) and not log_scale:
            return IntDistribution(sweep.start, sweep.end)
        return FloatDistribution(float(sweep.start), float(sweep.end), log=log_scale)
    raise ValueError(f"{override.input_line}: use choice(...), range(...) or interval(...) for an Optuna search")


def search_space(arguments: list[str]) -> tuple[list[str], dict[str, BaseDistribution]]:
    """Split overrides into those every trial gets and the searched ones (the last mention of a key wins)."""
    fixed: dict[str, str] = {}
    space: dict[str, BaseDistribution] = {}
    for override in OverridesParser.create().parse_overrides(arguments):
        key = override.get_key_element()
        fixed.pop(key, None)
        space.pop(key, None)
        if override.is_sweep_override():
            space[key] = distribution(override)
        else:
            fixed[key] = f"{key}={override.get_value_element_as_str()}"
    return list(fixed.values()), space


class OptunaSweeper(Sweeper):
    def __init__(
        self,
        storage: Optional[str],
        study_name: str,
        direction: str,
        n_trials: int,
        n_jobs: int,
        seed: Optional[int],
        params: Optional[dict] = None,
    ):
        self.storage, self.study_name, self.direction = storage, study_name, direction
        self.n_trials, self.n_jobs, self.seed = n_trials, max(1, n_jobs), seed
        self.params = {str(k): str(v) for k, v in (params or {}).items()}

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        from hydra.core.plugins import Plugins

        self.config = config
        self.hydra_context = hydra_context
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )
        self.sweep_dir = Path(config.hydra.sweep.dir)

    def study(self) -> optuna.Study:
        if self.storage and self.storage.startswith("sqlite:///"):
            Path(self.storage[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
        study = optuna.create_study(
            storage=self.storage,
            study_name=self.study_name,
            direction=self.direction,
            sampler=optuna.samplers.TPESampler(seed=self.seed),
            load_if_exists=True,
        )
        for stale in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            log.info("trial %d was interrupted: marked failed, its parameters queued again", stale.number)
            study.tell(stale.number, state=TrialState.FAIL)
            study.enqueue_trial(stale.params, skip_if_exists=False)
        return study

    def sweep(self, arguments: list[str]) -> optuna.Study:
        fixed, space = search_space([f"{k}={v}" for k, v in self.params.items()] + list(arguments))
        if not space:
            raise ValueError(
                "hydra/sweeper=optuna needs at least one sweep override, e.g. 'optim.lr=interval(1e-6,1e-4)'"
            )
        study = self.study()
        done = sum(t.state == TrialState.COMPLETE for t in study.get_trials(deepcopy=False))
        log.info(
            "Optuna study %r (%s): %d of %d trials complete; searching %s",
            self.study_name,
            self.storage or "in memory",
            done,
            self.n_trials,
            ", ".join(space),
        )
        failures = 0
        self.sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, self.sweep_dir / "multirun.yaml")
        while done < self.n_trials:
            if failures >= self.n_trials:
                raise RuntimeError(f"{failures} trials failed in this launch; stopping (see the job logs)")
            trials = [study.ask(space) for _ in range(min(self.n_jobs, self.n_trials - done))]
            assert [t.number for t in trials] == list(range(trials[0].number, trials[0].number + len(trials)))
            batch = [fixed + [f"{k}={v}" for k, v in t.params.items()] for t in trials]
            self.validate_batch_is_legal(batch)
            # job number = trial number: a relaunch into the same sweep dir never reuses (and resumes
            # from) another trial's output folder
            returns = self.launcher.launch(batch, initial_job_idx=trials[0].number)
            for trial, ret in zip(trials, returns):
                try:
                    value = float(ret.return_value)  # re-raises the job's exception when it failed
                    if value != value:
                        raise ValueError("the task returned NaN")
                except Exception as err:  # noqa: BLE001 - a failed trial must not end the search
                    log.warning("trial %d failed: %s", trial.number, err)
                    study.tell(trial, state=TrialState.FAIL)
                    failures += 1
                    continue
                study.tell(trial, value)
                done += 1
            self.save_best(study)
        return study

    def save_best(self, study: optuna.Study) -> None:
        try:
            best = study.best_trial
        except ValueError:
            return
        OmegaConf.save(
            OmegaConf.create(
                {
                    "study": self.study_name,
                    "storage": self.storage,
                    "best_value": best.value,
                    "best_trial": best.number,
                    "best_params": best.params,
                    "completed_trials": len(study.get_trials(states=(TrialState.COMPLETE,))),
                }
            ),
            self.sweep_dir / "optimization_results.yaml",
        )
        log.info("best so far: trial %d, value %.4f, %s", best.number, best.value, best.params)
