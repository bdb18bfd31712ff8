"""Plug-ins: every module of this package is imported by ``prerl.algo.registry.load_plugins`` (called by
the validation step ``prerl.launch.choices.check_choices`` before any model loads, and by a registry asked
for a name it does not hold), and registers its parts with the registries they join:

(modules of ``prerl.algo``)

=========================  ===================================================  ========================================
part                       decorator                                            contract
=========================  ===================================================  ========================================
policy loss                ``losses.register_policy_loss``                      ``losses.PolicyLoss``
KL estimator               ``losses.KL_ESTIMATORS.register``                    ``losses.KLEstimator``
loss aggregation mode      ``losses.AGGREGATIONS.register``                     ``losses.Aggregation``
advantage estimator        ``advantages.register_advantage``                    ``advantages.AdvantageEstimator``
objective advantage        ``objectives.register_objective_advantage``          ``objectives.ObjectiveAdvantage``
sample filter / weighting  ``objectives.SAMPLE_SELECTIONS.register``            ``objectives.SampleSelection``
rollout correction         ``rollout_correction.ROLLOUT_CORRECTIONS.register``  ``rollout_correction.RolloutCorrection``
=========================  ===================================================  ========================================

Each decorator takes ``check=fn(section, where) -> [errors]`` for the knobs the part reads. A new
algorithm is one module here and one YAML in ``conf/algorithm/`` (a new objective: a YAML in
``conf/objective/``); the loop, the config schema and the tests find it by name. Modules outside
this package join the same way when the config lists them in ``plugins``.
"""

import importlib
import pkgutil

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
