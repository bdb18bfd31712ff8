"""Algorithm plug-ins. Every module of this package is imported when ``prerl.losses`` is, and
registers its parts with the registries they join (``prerl.losses.register_policy_loss``,
``prerl.advantages.register``), so that a new algorithm is one module here and one YAML in
``conf/algorithm/``: the loop, the config schema and the tests find it by name.

A policy loss follows ``prerl.losses.PolicyLoss``: per-token log-probs in, a per-token loss matrix
and token-mean diagnostics out.
"""

import importlib
import pkgutil

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
