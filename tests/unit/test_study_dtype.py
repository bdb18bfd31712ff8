"""A study continued on another machine computes as its runs did (analysis/study/dtype.py)."""

from analysis.study import dtype
from analysis.study.jobs import compose_config


def test_a_machine_of_another_dtype_is_refused_naming_both():
    theirs = dtype.exported_dtypes([{"tags": {"compute_dtype": "bfloat16"}}] * 7 + [{"tags": {}}])
    assert theirs == {"bfloat16": 7, "unknown": 1}
    assert dtype.mismatch("bfloat16", {"bfloat16": 7}, "auto") is None
    assert dtype.mismatch("float32", {}, "auto") is None  # a study's first launch sets its dtype
    refused = dtype.mismatch("float32", {"bfloat16": 7}, "auto")
    assert refused.startswith("this machine computes the study's runs in float32 (model.autocast=auto)")
    assert "(7 in bfloat16)" in refused and "\n" not in refused


def test_the_machines_dtype_follows_the_config():
    assert dtype.machine_dtype(compose_config(["experiment=smoke"])) == "float32"  # no autocast
    bf16 = compose_config(["experiment=smoke", "model.autocast=bfloat16"])
    assert dtype.machine_dtype(bf16) == "bfloat16"
