"""The plug-in registries (prerl/algo/registry.py): a second part under one name is refused, and a miss
names the choices (a plug-in module outside prerl that a run trains with: tests/integration/test_plugins_run.py)."""

import pytest
from helpers import registries_restored


@pytest.fixture(autouse=True)
def restored_registries():
    """What a test's plug-in registers leaves with the test (the registries are process-wide)."""
    with registries_restored():
        yield


def test_a_registry_refuses_a_second_part_under_one_name_and_names_the_choices_on_a_miss():
    from prerl.algo.losses import KL_ESTIMATORS

    with pytest.raises(ValueError, match=r"^KL estimator 'k1' is registered twice \(tests?.*"):
        KL_ESTIMATORS.register("k1")(lambda logp, ref_logp: logp)
    with pytest.raises(KeyError, match=r"no KL estimator 'k9': choose one of \['k1', 'k2', 'k3'"):
        KL_ESTIMATORS["k9"]
