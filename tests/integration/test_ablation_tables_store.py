"""`make ablation-table` on a fixture MLflow store whose values are known: means, intervals and Δs
against a direct computation, every format, the step rule, missing runs and equal-cost columns."""

import csv
import io
import math

import numpy as np
import pytest
from helpers import ABLATION_BASE as BASE
from helpers import ABLATION_DSRL as DSRL
from helpers import ABLATION_DSRL_ROW as DSRL_ROW
from mlflow.entities import Metric, Param, RunStatus
from mlflow.tracking import MlflowClient

from analysis import ablation_table, render
from analysis.aggregate import Cell, StepRule
from analysis.runs import load_runs
from analysis.tables import Table, TableOptions, build_tables
from prerl.eval.stats import compare

K, N = 4, 5  # samples per problem and problems of the per-problem fixtures


def fill(mean: float, n: int = N) -> list[int]:
    """Correct counts out of K for n problems with the given mean, easiest problems first (so that
    problem p0 is the easiest for every run: what pairing by problem exploits)."""
    left, counts = round(mean * n * K), []
    for _ in range(n):
        counts.append(min(K, left))
        left -= counts[-1]
    return counts


def log_run(client, exp_id, sweep, seed, curves, status="FINISHED", problems=None, **params):
    """A run of ``sweep`` with ``curves``: {metric: {step: value}}, the params of BASE updated and, per
    ``problems[set] = (step, ids, counts)``, its per-problem artifact."""
    run = client.create_run(exp_id, tags={"sweep": sweep})
    p = {**BASE, **params, "seed": str(seed), "tracking.tags.sweep": sweep}
    client.log_batch(
        run.info.run_id,
        params=[Param(k, v) for k, v in p.items()],
        metrics=[Metric(k, v, 0, s) for k, steps in curves.items() for s, v in steps.items()],
    )
    for name, (step, ids, counts) in (problems or {}).items():
        client.log_dict(
            run.info.run_id,
            {"set": name, "K": K, "id": ids, "correct": counts, "mean_length": None},
            f"per_problem/{name}_step{step:05d}.json",
        )
    client.set_terminated(run.info.run_id, status=status)
    return run.info.run_id


def id_curves(test, amc, extra=None):
    return {"eval/test/avg_at_4": test, "eval/amc23/avg_at_4": amc, **(extra or {})}


TEST_IDS = [f"p{i}" for i in range(N)]


def at10(test_mean, test_ids=TEST_IDS, extra=()):
    """Per-problem results on ``test`` at step 10 (amc23 has none: its intervals are over seeds)."""
    return {"test": (10, test_ids, fill(test_mean) + list(extra))}


@pytest.fixture
def store(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    exp = client.create_experiment("fx")
    # baselines: GRPO (2 seeds), DSRL (2 seeds), PPO (1 seed, no OOD set, one more test problem)
    log_run(
        client,
        exp,
        "baselines",
        0,
        id_curves(
            {0: 0.30, 5: 0.45, 10: 0.40},
            {0: 0.10, 5: 0.25, 10: 0.20},
            {
                "eval/ood/avg_at_4": {10: 0.10},
                "eval/test/pass_at_1": {10: 0.4},
                "eval/test/pass_at_4": {10: 0.7},
                "train/accuracy": {1: 0.2, 2: 0.3},
            },
        ),
        problems=at10(0.40),
    )
    log_run(
        client,
        exp,
        "baselines",
        1,
        id_curves({0: 0.30, 5: 0.35, 10: 0.50}, {0: 0.10, 5: 0.15, 10: 0.30}, {"eval/ood/avg_at_4": {10: 0.20}}),
        problems=at10(0.50),
    )
    log_run(
        client,
        exp,
        "baselines",
        0,
        id_curves({0: 0.30, 5: 0.60, 10: 0.60}, {0: 0.10, 5: 0.40, 10: 0.40}, {"eval/ood/avg_at_4": {10: 0.25}}),
        problems=at10(0.60),
        **DSRL,
    )
    log_run(
        client,
        exp,
        "baselines",
        1,
        id_curves({0: 0.30, 5: 0.45, 10: 0.70}, {0: 0.10, 5: 0.35, 10: 0.50}, {"eval/ood/avg_at_4": {10: 0.35}}),
        problems=at10(0.70),
        **DSRL,
    )
    log_run(
        client,
        exp,
        "baselines",
        0,
        id_curves({0: 0.30, 10: 0.55}, {0: 0.10, 10: 0.25}),
        problems=at10(0.55, TEST_IDS + ["p5"], extra=[3]),
        **{"algorithm.name": "ppo"},
    )
    # seeds sweep: a third DSRL seed, and GRPO seed 1 again (same config: must count once)
    log_run(
        client,
        exp,
        "seeds",
        2,
        id_curves({0: 0.30, 5: 0.60, 10: 0.80}, {0: 0.10, 5: 0.40, 10: 0.60}, {"eval/ood/avg_at_4": {10: 0.30}}),
        problems=at10(0.80),
        **DSRL,
    )
    log_run(
        client,
        exp,
        "seeds",
        1,
        id_curves({0: 0.30, 5: 0.35, 10: 0.50}, {0: 0.10, 5: 0.15, 10: 0.30}, {"eval/ood/avg_at_4": {10: 0.20}}),
        problems=at10(0.50),
    )
    log_run(client, exp, "baselines", 3, id_curves({10: 0.99}, {10: 0.99}), status="FAILED")  # never counted
    # warm-up sweep: S=0 two seeds, S=2 one seed; a killed S=4 run
    log_run(client, exp, "warmup", 0, {"eval/test/avg_at_4": {10: 0.40}})
    log_run(client, exp, "warmup", 1, {"eval/test/avg_at_4": {10: 0.60}})
    log_run(client, exp, "warmup", 0, {"eval/test/avg_at_4": {10: 0.70}}, warmup_steps="2")
    log_run(client, exp, "warmup", 0, {"eval/test/avg_at_4": {5: 0.90}}, status="KILLED", warmup_steps="4")
    # objectives: the same objective at two learning rates must not be averaged together
    log_run(client, exp, "objectives", 0, {"eval/test/avg_at_4": {10: 0.50}}, warmup_steps="10")
    log_run(
        client, exp, "objectives", 0, {"eval/test/avg_at_4": {10: 0.20}}, warmup_steps="10", **{"optim.lr": "0.0001"}
    )
    return uri, client


def tables_of(client, **opts) -> dict[str, Table]:
    built = build_tables(lambda sweeps: load_runs(client, "fx", sweeps), TableOptions(**opts))
    return {t.name: t for t in built}


SD = math.sqrt(50)  # sample std of two values 10 points apart: 7.0711


def direct_main_comparison() -> dict:
    """The main table's comparison computed by hand from the fixture: per row (in the table's order)
    and set (sorted), the [seeds, problems] scores — test per problem (p5 only PPO has: left out),
    amc23 the logged means — compared with the tables' default draws."""

    def test(*means):
        return np.array([fill(m) for m in means]) / K

    def amc(*means):
        return np.array([[m] for m in means])

    rows = {
        "grpo": {"amc23": amc(0.20, 0.30), "test": test(0.40, 0.50)},
        "ppo": {"amc23": amc(0.25), "test": test(0.55)},
        DSRL_ROW: {"amc23": amc(0.40, 0.50, 0.60), "test": test(0.60, 0.70, 0.80)},
    }
    return compare(rows, "grpo", "Avg", 0.95, 2000, 0)


def test_main_table_cells_are_the_paired_bootstrap_of_the_logged_results(store):
    _, client = store
    main = tables_of(client)["main"]
    assert main.rows == ["grpo", "ppo", DSRL_ROW]
    assert [c.name for c in main.columns] == ["amc23", "test", "Avg"]  # OOD set excluded
    assert main.baseline == "grpo" and main.delta_column == "Avg"
    direct = direct_main_comparison()
    for row in main.rows:
        for column in ("amc23", "test", "Avg"):
            cell, want = main.cell(row, column), direct[row].estimate[column].scaled(100)
            assert (cell.mean, cell.lo, cell.hi) == pytest.approx((want.mean, want.lo, want.hi), abs=1e-9)
            if row != "grpo":
                d = direct[row].delta[column].scaled(100)
                assert (cell.delta.mean, cell.delta.lo, cell.delta.hi) == pytest.approx((d.mean, d.lo, d.hi), abs=1e-9)
    grpo = main.cell("grpo", "test")
    assert (grpo.mean, grpo.std, grpo.n) == (pytest.approx(45.0), pytest.approx(SD), 2)  # seed 1 twice: once
    assert main.cell("grpo", "test").delta is None
    assert main.cell(DSRL_ROW, "Avg").mean == pytest.approx(60.0) and main.cell(DSRL_ROW, "Avg").n == 3
    assert main.cell(DSRL_ROW, "Avg").delta.mean == pytest.approx(25.0)
    avg = main.columns[-1]
    assert avg.paper == {"grpo": 55.79, DSRL_ROW: 57.54}
    # DSRL's Δ from GRPO lies above 0 on the fixture: it is the best, and says so
    assert main.cell(DSRL_ROW, "Avg").delta.lo > 0 and main.best(avg) == {DSRL_ROW}
    assert any("paired hierarchical bootstrap" in n for n in main.notes)
    assert any("amc23" in n and "seeds only" in n for n in main.notes)  # no per-problem results there
    assert any(n.startswith("test: 1 problems not evaluated in every row") for n in main.notes)

    md = render.markdown(main)
    g, d = main.cell("grpo", "test"), main.cell(DSRL_ROW, "Avg").delta
    assert "| method | amc23 | test | Avg | Avg (paper) | Δ Avg vs grpo |" in md
    assert f"| 45.0 [{g.lo:.1f}, {g.hi:.1f}] (2) |" in md and "| 55.79 | baseline |" in md
    assert f"| 57.54 | {d.mean:+.1f} [{d.lo:+.1f}, {d.hi:+.1f}] |" in md
    assert f"**60.0 [{main.cell(DSRL_ROW, 'Avg').lo:.1f}, " in md
    tex = render.latex(main)
    assert r"$\Delta$ Avg vs grpo" in tex and r"nsr\_prerl(2)$\rightarrow$grpo" in tex
    rows = {(r["row"], r["column"]): r for r in csv.DictReader(io.StringIO(render.csv_text(main)))}
    assert float(rows[("grpo", "test")]["mean"]) == pytest.approx(45.0)
    assert float(rows[("grpo", "test")]["lo"]) == pytest.approx(g.lo)
    assert float(rows[("grpo", "test")]["std"]) == pytest.approx(SD) and rows[("grpo", "test")]["delta"] == ""
    assert float(rows[(DSRL_ROW, "Avg")]["delta_hi"]) == pytest.approx(d.hi)
    assert rows[("ppo", "test")]["std"] == "" and rows[("ppo", "test")]["n"] == "1"
    assert rows[(DSRL_ROW, "Avg")]["best"] == "True" and rows[("grpo", "Avg")]["paper"] == "55.79"


def test_step_rule_best_is_chosen_on_a_split_the_table_does_not_report(store):
    _, client = store
    with pytest.raises(ValueError, match="--best-on"):
        tables_of(client, step="best")
    best = tables_of(client, step="best", best_on="amc23")["main"]
    assert [c.name for c in best.columns] == ["test", "Avg"]  # the selection split is not reported
    # on amc23 GRPO seed 0 peaks at step 5 (25%), seed 1 at step 10 (30%): test 45% and 50%; the
    # step-5 test value has no per-problem results, so test falls back to the logged means
    assert best.cell("grpo", "test").mean == pytest.approx(47.5)
    assert any("not reported" in n and "amc23" in n for n in best.notes)
    at5 = tables_of(client, step=5)["main"]
    assert at5.cell("ppo", "test") == Cell(None, None, 0, 1)  # PPO has no step-5 eval
    assert render.cell_text(at5.cell("ppo", "test"), 1) == "-"
    pass1 = tables_of(client, metric="pass_at_1")["main"]  # from GRPO seed 0's per-problem counts
    assert (pass1.cell("grpo", "test").mean, pass1.cell("grpo", "test").n, pass1.cell("grpo", "test").of) == (
        pytest.approx(40.0),
        1,
        2,
    )
    assert render.cell_text(pass1.cell("grpo", "test"), 1).endswith("(1/2)")
    assert StepRule("best", "ood").describe().startswith("the step with the best avg on ood")


def test_missing_runs_are_dashes_and_configs_are_never_mixed(store):
    _, client = store
    tables = tables_of(client)
    ood = tables["ood"]
    assert [c.name for c in ood.columns] == ["ood", "Avg"]
    grpo = ood.cell("grpo", "ood")  # two seeds, no per-problem results: the seeds' 10 and 20 resampled
    assert (grpo.mean, grpo.std, grpo.n, grpo.lo, grpo.hi) == (
        pytest.approx(15.0),
        pytest.approx(SD),
        2,
        pytest.approx(10.0),
        pytest.approx(20.0),
    )
    assert ood.cell(DSRL_ROW, "ood").mean == pytest.approx(30.0) and ood.cell(DSRL_ROW, "ood").n == 3
    assert "| ppo | - | - | - |" in render.markdown(ood)

    warmup = tables["warmup"]
    assert warmup.rows == ["S=0", "S=2"]  # the killed S=4 run is not there
    s0 = warmup.cell("S=0", "test")
    assert (s0.mean, s0.std, s0.lo, s0.hi) == (
        pytest.approx(50.0),
        pytest.approx(math.sqrt(200)),
        pytest.approx(40.0),
        pytest.approx(60.0),
    )
    assert warmup.cell("S=2", "test").delta.mean == pytest.approx(20.0)
    assert warmup.columns[-1].paper == {"S=0": 55.79}

    objectives = tables["objectives"]
    assert objectives.rows == ["nsr_prerl [optim.lr=0.0001]", "nsr_prerl [optim.lr=2e-05]"]
    assert objectives.cell("nsr_prerl [optim.lr=2e-05]", "test").mean == pytest.approx(50.0)
    assert any("optim.lr" in note and "split" in note for note in objectives.notes)
    assert any("confound" in note and "optim.lr (2e-05 vs 0.0001)" in note for note in objectives.notes)
    assert "warmup_kind" not in tables  # no runs of that sweep: no table


def test_efficiency_steps_ratio_and_equal_cost(store):
    _, client = store
    eff = tables_of(client, thresholds=(0.30, 0.45))["efficiency"]
    # first eval step with mean(test, amc23) >= 30%: GRPO seeds at 5 and 10, DSRL all at 5, PPO at 10
    steps = eff.cell("grpo", "steps to 30%")
    assert (steps.mean, steps.std, steps.n, steps.lo, steps.hi) == (
        pytest.approx(7.5),
        pytest.approx(math.sqrt(12.5)),
        2,
        pytest.approx(5.0),
        pytest.approx(10.0),
    )
    dsrl = eff.cell(DSRL_ROW, "steps to 30%")
    assert (dsrl.mean, dsrl.n, dsrl.delta.mean) == (pytest.approx(5.0), 3, pytest.approx(-2.5))
    assert eff.cell(DSRL_ROW, "grpo/method at 30%").mean == pytest.approx(1.5)
    assert eff.cell("ppo", "grpo/method at 30%").mean == pytest.approx(0.75)
    # 45%: GRPO never gets there (dash, and no ratio); DSRL at 5, 10, 5
    assert eff.cell("grpo", "steps to 45%") == Cell(None, None, 0, 2)
    assert eff.cell(DSRL_ROW, "steps to 45%").mean == pytest.approx(20 / 3)
    assert eff.cell(DSRL_ROW, "grpo/method at 45%").mean is None
    ratio45 = next(c for c in eff.columns if c.name == "grpo/method at 45%")
    assert ratio45.paper == {DSRL_ROW: 2.5}
    # the fixture's runs logged no costs: no equal-cost columns, and the table says why
    assert not any(" at " in c.name and "tokens" in c.name for c in eff.columns)
    assert any("cost/generated_tokens_total" in n for n in eff.notes)


def test_cli_writes_all_formats_figures_and_a_summary_run(store, tmp_path):
    uri, client = store
    out = ablation_table.main(["--uri", uri, "--out", str(tmp_path / "tables")])  # experiment found by itself
    for name in ("main", "warmup", "objectives", "ood", "efficiency"):
        for suffix in (".md", ".tex", ".csv"):
            assert (out / f"{name}{suffix}").stat().st_size > 0
    assert "| grpo | 25.0 [20.0, 30.0] (2) | 45.0 [" in (out / "main.md").read_text()
    import matplotlib.image

    for png in ("main_pass_at_k.png", "main_training.png", "main_solved.png", "warmup_training.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert matplotlib.image.imread(out / png).shape[0] > 100
    summary = client.search_runs(
        [client.get_experiment_by_name("fx").experiment_id], filter_string="attributes.run_name = 'ablation-table'"
    )
    assert len(summary) == 1 and summary[0].info.status == RunStatus.to_string(RunStatus.FINISHED)
    logged = {a.path for a in client.list_artifacts(summary[0].info.run_id)}
    assert {"main.md", "main.tex", "main.csv", "tables.md", "main_pass_at_k.png"} <= logged


def test_cli_refuses_a_baseline_that_is_not_a_row_and_best_without_a_split(store, tmp_path):
    uri, _ = store
    with pytest.raises(SystemExit, match=r"main: --baseline 'nope' is not a row of this table; rows: \['grpo'"):
        ablation_table.main(
            ["--uri", uri, "--out", str(tmp_path / "t"), "--no-log", "--tables", "main", "--baseline", "nope"]
        )
    with pytest.raises(SystemExit, match="--best-on"):
        ablation_table.main(["--uri", uri, "--out", str(tmp_path / "t"), "--no-log", "--step", "best"])
