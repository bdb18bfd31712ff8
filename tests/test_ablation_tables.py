"""`make ablation-table` on a fixture MLflow store whose values are known: exact numbers in every format."""

import csv
import io
import math

import pytest
from mlflow.entities import Metric, Param, RunStatus
from mlflow.tracking import MlflowClient

from analysis import ablation_table, render
from analysis.aggregate import Cell, summarise
from analysis.tables import TABLES, Table, TableOptions, build_tables
from analysis.runs import load_runs

BASE = {"total_steps": "10", "objective.name": "nsr_prerl", "algorithm.name": "grpo", "optim.lr": "2e-05",
        "warmup_steps": "0"}
DSRL = {"warmup_steps": "2"}


def log_run(client, exp_id, sweep, seed, curves, status="FINISHED", **params):
    """A run of ``sweep`` with ``curves``: {metric: {step: value}}, and the params of BASE updated."""
    run = client.create_run(exp_id, tags={"sweep": sweep})
    p = {**BASE, **params, "seed": str(seed), "tracking.tags.sweep": sweep}
    client.log_batch(run.info.run_id, params=[Param(k, v) for k, v in p.items()],
                     metrics=[Metric(k, v, 0, s) for k, steps in curves.items() for s, v in steps.items()])
    client.set_terminated(run.info.run_id, status=status)
    return run.info.run_id


def id_curves(test, amc, extra=None):
    return {"eval/test/avg_at_4": test, "eval/amc23/avg_at_4": amc, **(extra or {})}


@pytest.fixture
def store(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    exp = client.create_experiment("fx")
    # baselines: GRPO (2 seeds), DSRL (2 seeds), PPO (1 seed, no OOD set)
    log_run(client, exp, "baselines", 0, id_curves({0: .30, 5: .45, 10: .40}, {0: .10, 5: .25, 10: .20},
                                                   {"eval/ood/avg_at_4": {10: .10}, "eval/test/pass_at_1": {10: .4},
                                                    "eval/test/pass_at_4": {10: .7},
                                                    "train/accuracy": {1: .2, 2: .3}}))
    log_run(client, exp, "baselines", 1, id_curves({0: .30, 5: .35, 10: .50}, {0: .10, 5: .15, 10: .30},
                                                   {"eval/ood/avg_at_4": {10: .20}}))
    log_run(client, exp, "baselines", 0, id_curves({0: .30, 5: .60, 10: .60}, {0: .10, 5: .40, 10: .40},
                                                   {"eval/ood/avg_at_4": {10: .25}}), **DSRL)
    log_run(client, exp, "baselines", 1, id_curves({0: .30, 5: .45, 10: .70}, {0: .10, 5: .35, 10: .50},
                                                   {"eval/ood/avg_at_4": {10: .35}}), **DSRL)
    log_run(client, exp, "baselines", 0, id_curves({0: .30, 10: .55}, {0: .10, 10: .25}), **{"algorithm.name": "ppo"})
    # seeds sweep: a third DSRL seed, and GRPO seed 1 again (same config: must count once)
    log_run(client, exp, "seeds", 2, id_curves({0: .30, 5: .60, 10: .80}, {0: .10, 5: .40, 10: .60},
                                               {"eval/ood/avg_at_4": {10: .30}}), **DSRL)
    log_run(client, exp, "seeds", 1, id_curves({0: .30, 5: .35, 10: .50}, {0: .10, 5: .15, 10: .30},
                                               {"eval/ood/avg_at_4": {10: .20}}))
    log_run(client, exp, "baselines", 3, id_curves({10: .99}, {10: .99}), status="FAILED")  # never counted
    # warm-up sweep: S=0 two seeds, S=2 one seed; a killed S=4 run
    log_run(client, exp, "warmup", 0, {"eval/test/avg_at_4": {10: .40}})
    log_run(client, exp, "warmup", 1, {"eval/test/avg_at_4": {10: .60}})
    log_run(client, exp, "warmup", 0, {"eval/test/avg_at_4": {10: .70}}, warmup_steps="2")
    log_run(client, exp, "warmup", 0, {"eval/test/avg_at_4": {5: .90}}, status="KILLED", warmup_steps="4")
    # objectives: the same objective at two learning rates must not be averaged together
    log_run(client, exp, "objectives", 0, {"eval/test/avg_at_4": {10: .50}}, warmup_steps="10")
    log_run(client, exp, "objectives", 0, {"eval/test/avg_at_4": {10: .20}}, warmup_steps="10", **{"optim.lr": "0.0001"})
    return uri, client


def tables_of(client, **opts) -> dict[str, Table]:
    built = build_tables(lambda sweeps: load_runs(client, "fx", sweeps), TableOptions(**opts))
    return {t.name: t for t in built}


SD = math.sqrt(50)  # sample std of two values 10 points apart: 7.0711


def test_main_table_mean_std_count_best_and_paper(store):
    _, client = store
    main = tables_of(client)["main"]
    assert main.rows == ["grpo", "ppo", "nsr_prerl(2)→grpo"]
    assert [c.name for c in main.columns] == ["amc23", "test", "Avg"]  # OOD set excluded
    assert main.cell("grpo", "test") == Cell(pytest.approx(45.0), pytest.approx(SD), 2)  # seed 1 twice: once
    assert main.cell("grpo", "Avg") == Cell(pytest.approx(35.0), pytest.approx(SD), 2)
    assert main.cell("ppo", "amc23") == Cell(pytest.approx(25.0), None, 1)
    assert main.cell("nsr_prerl(2)→grpo", "test") == Cell(pytest.approx(70.0), pytest.approx(10.0), 3)
    assert main.cell("nsr_prerl(2)→grpo", "Avg") == Cell(pytest.approx(60.0), pytest.approx(10.0), 3)
    avg = main.columns[-1]
    assert avg.paper == {"grpo": 55.79, "nsr_prerl(2)→grpo": 57.54}
    assert main.best(avg) == {"nsr_prerl(2)→grpo"}

    md = render.markdown(main)
    assert "| method | amc23 | test | Avg | Avg (paper) |" in md
    assert "| grpo | 25.00 ± 7.07 (2) | 45.00 ± 7.07 (2) | 35.00 ± 7.07 (2) | 55.79 |" in md
    assert "| ppo | 25.00 (1) | 55.00 (1) | 40.00 (1) | - |" in md
    assert "| nsr_prerl(2)→grpo | **50.00 ± 10.00 (3)** | **70.00 ± 10.00 (3)** | **60.00 ± 10.00 (3)** | 57.54 |" in md
    tex = render.latex(main)
    assert r"nsr\_prerl(2)$\rightarrow$grpo & \textbf{50.00 $\pm$ 10.00 (3)}" in tex
    rows = {(r["row"], r["column"]): r for r in csv.DictReader(io.StringIO(render.csv_text(main)))}
    assert float(rows[("grpo", "test")]["mean"]) == pytest.approx(45.0)
    assert float(rows[("grpo", "test")]["std"]) == pytest.approx(SD)
    assert rows[("ppo", "test")]["std"] == "" and rows[("ppo", "test")]["n"] == "1"
    assert rows[("nsr_prerl(2)→grpo", "Avg")]["best"] == "True" and rows[("grpo", "Avg")]["paper"] == "55.79"


def test_best_step_and_other_metric(store):
    _, client = store
    best = tables_of(client, step="best")["main"]
    # GRPO seed 0 peaks at step 5 (Avg 35), seed 1 at step 10 (Avg 40)
    assert best.cell("grpo", "test").mean == pytest.approx(47.5)
    assert best.cell("grpo", "Avg").mean == pytest.approx(37.5)
    at5 = tables_of(client, step=5)["main"]
    assert at5.cell("ppo", "test") == Cell(None, None, 0, 1)  # PPO has no step-5 eval
    assert render.cell_text(at5.cell("ppo", "test"), 2) == "-"
    pass1 = tables_of(client, metric="pass_at_1")["main"]
    assert pass1.cell("grpo", "test") == Cell(pytest.approx(40.0), None, 1, 2)
    assert render.cell_text(pass1.cell("grpo", "test"), 2) == "40.00 (1/2)"


def test_missing_runs_are_dashes_and_configs_are_never_mixed(store):
    _, client = store
    tables = tables_of(client)
    ood = tables["ood"]
    assert [c.name for c in ood.columns] == ["ood", "Avg"]
    assert ood.cell("grpo", "ood") == Cell(pytest.approx(15.0), pytest.approx(SD), 2)
    assert ood.cell("nsr_prerl(2)→grpo", "ood") == Cell(pytest.approx(30.0), pytest.approx(5.0), 3)
    assert "| ppo | - | - |" in render.markdown(ood)

    warmup = tables["warmup"]
    assert warmup.rows == ["S=0", "S=2"]  # the killed S=4 run is not there
    assert warmup.cell("S=0", "test") == Cell(pytest.approx(50.0), pytest.approx(math.sqrt(200)), 2)
    assert warmup.columns[-1].paper == {"S=0": 55.79}

    objectives = tables["objectives"]
    assert objectives.rows == ["nsr_prerl [optim.lr=0.0001]", "nsr_prerl [optim.lr=2e-05]"]
    assert objectives.cell("nsr_prerl [optim.lr=2e-05]", "test") == Cell(pytest.approx(50.0), None, 1)
    assert any("optim.lr" in note and "split" in note for note in objectives.notes)
    assert "warmup_kind" not in tables  # no runs of that sweep: no table


def test_efficiency_steps_and_ratio_to_grpo(store):
    _, client = store
    eff = tables_of(client, thresholds=(0.30, 0.45))["efficiency"]
    # first eval step with mean(test, amc23) >= 30%: GRPO seeds at 5 and 10, DSRL all at 5, PPO at 10
    assert eff.cell("grpo", "steps to 30%") == Cell(pytest.approx(7.5), pytest.approx(math.sqrt(12.5)), 2)
    assert eff.cell("nsr_prerl(2)→grpo", "steps to 30%") == Cell(pytest.approx(5.0), pytest.approx(0.0), 3)
    assert eff.cell("nsr_prerl(2)→grpo", "GRPO/method at 30%").mean == pytest.approx(1.5)
    assert eff.cell("ppo", "GRPO/method at 30%").mean == pytest.approx(0.75)
    # 45%: GRPO never gets there (dash, and no ratio); DSRL at 5, 10, 5
    assert eff.cell("grpo", "steps to 45%") == Cell(None, None, 0, 2)
    assert eff.cell("nsr_prerl(2)→grpo", "steps to 45%").mean == pytest.approx(20 / 3)
    assert eff.cell("nsr_prerl(2)→grpo", "GRPO/method at 45%").mean is None
    ratio45 = next(c for c in eff.columns if c.name == "GRPO/method at 45%")
    assert ratio45.paper == {"nsr_prerl(2)→grpo": 2.5}
    assert eff.best(next(c for c in eff.columns if c.name == "steps to 30%")) == {"nsr_prerl(2)→grpo"}


def test_cli_writes_all_formats_figures_and_a_summary_run(store, tmp_path):
    uri, client = store
    out = ablation_table.main(["--uri", uri, "--out", str(tmp_path / "tables")])  # experiment found by itself
    for name in ("main", "warmup", "objectives", "ood", "efficiency"):
        for suffix in (".md", ".tex", ".csv"):
            assert (out / f"{name}{suffix}").stat().st_size > 0
    assert "| grpo | 25.00 ± 7.07 (2) | 45.00 ± 7.07 (2) | 35.00 ± 7.07 (2) | 55.79 |" in (out / "main.md").read_text()
    import matplotlib.image

    for png in ("main_pass_at_k.png", "main_training.png", "main_solved.png", "warmup_training.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert matplotlib.image.imread(out / png).shape[0] > 100
    summary = client.search_runs([client.get_experiment_by_name("fx").experiment_id],
                                 filter_string="attributes.run_name = 'ablation-table'")
    assert len(summary) == 1 and summary[0].info.status == RunStatus.to_string(RunStatus.FINISHED)
    logged = {a.path for a in client.list_artifacts(summary[0].info.run_id)}
    assert {"main.md", "main.tex", "main.csv", "tables.md", "main_pass_at_k.png"} <= logged


def test_summarise_is_sample_std():
    assert summarise([1.0, 2.0, 3.0]) == Cell(2.0, 1.0, 3)
    assert summarise([], of=2) == Cell(None, None, 0, 2)
    assert {t.name for t in TABLES} == {"main", "warmup", "warmup_kind", "objectives", "ood", "efficiency"}
