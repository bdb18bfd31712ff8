"""The ablation tables' arithmetic on runs built in memory: which row is best beyond the noise, confounds,
accuracy at equal generated tokens, and the sample std of a cell (the tables read from a store:
tests/integration/test_ablation_tables_store.py)."""

import pytest
from helpers import ABLATION_BASE as BASE
from helpers import ABLATION_DSRL as DSRL
from helpers import ABLATION_DSRL_ROW as DSRL_ROW

from analysis.aggregate import Cell, Group, confounds, summarise
from analysis.runs import RunRecord
from analysis.tables import TABLES, Column, Table, TableOptions, budget_step, efficiency_table
from prerl.eval.stats import Interval


def test_best_is_marked_only_outside_the_noise():
    cols = [Column("x")]
    within = Interval(2.0, -1.0, 5.0)
    table = Table(
        "t",
        "t",
        "row",
        ["base", "a", "b"],
        cols,
        {
            ("base", "x"): Cell(50.0, None, 3),
            ("a", "x"): Cell(52.0, None, 3, delta=within),
            ("b", "x"): Cell(40.0, None, 3, delta=Interval(-10.0, -14.0, -6.0)),
        },
        baseline="base",
    )
    assert table.best(cols[0]) == set() and table.within_noise("x") == ["a"]
    table.cells[("a", "x")] = Cell(52.0, None, 3, delta=Interval(2.0, 0.5, 4.0))
    assert table.best(cols[0]) == {"a"}
    table.cells[("a", "x")] = Cell(45.0, None, 3, delta=Interval(-5.0, -8.0, -2.0))  # the baseline is best...
    assert table.best(cols[0]) == {"base"}  # ...beyond the noise of both others
    table.cells[("b", "x")] = Cell(49.0, None, 3, delta=within)
    assert table.best(cols[0]) == set()
    assert Table("t", "t", "row", ["a", "b"], cols, table.cells).best(cols[0]) == set()  # no baseline: no claim


def record(run_id, seed, curves, **params):
    return RunRecord(run_id, {**BASE, "seed": str(seed), **params}, history=curves)


def test_confounds_are_keys_beyond_the_tables_own():
    """The official scripts' GRPO baseline uses clip-high 0.28 where DSRL uses 0.2: a confound. PPO's
    own algorithm options differ with its name: not one."""
    grpo = record("g", 0, {}, **{"algorithm.clip_ratio_high": "0.28"})
    dsrl = record("d", 0, {}, **{"algorithm.clip_ratio_high": "0.2", **DSRL})
    ppo = record("p", 0, {}, **{"algorithm.name": "ppo", "algorithm.clip_ratio_high": "0.2", "algorithm.vf": "1"})
    groups = [Group("grpo", [grpo]), Group("dsrl", [dsrl]), Group("ppo", [ppo])]
    found = confounds(groups, "grpo", ("algorithm.name", "warmup_steps", "objective.name"))
    assert found == {"dsrl": ["algorithm.clip_ratio_high (0.2 vs 0.28)"]}
    assert confounds(groups, None, ()) == {}


def test_accuracy_at_equal_generated_tokens():
    """Runs spend tokens at different rates: each is read at its last eval within the budget every
    run reached (the smallest final total)."""

    def run(run_id, seed, acc, spent, **params):
        return record(
            run_id,
            seed,
            {
                "eval/test/avg_at_4": acc,
                "cost/generated_tokens_total": spent,
                "cost/train_seconds_total": {s: v / 100 for s, v in spent.items()},
            },
            **params,
        )

    cheap = [
        run("c0", 0, {0: 0.1, 5: 0.3, 10: 0.5}, {5: 500, 10: 1000}),
        run("c1", 1, {0: 0.1, 5: 0.4, 10: 0.6}, {5: 500, 10: 1000}),
    ]
    costly = [
        run("x0", 0, {0: 0.1, 5: 0.6, 10: 0.8}, {5: 2000, 10: 4000}, **DSRL),
        run("x1", 1, {0: 0.1, 5: 0.5, 10: 0.7}, {5: 900, 10: 1800}, **DSRL),
    ]
    assert budget_step(costly[0], ["test"], "avg", "cost/generated_tokens_total", 1000) == 0
    assert budget_step(costly[1], ["test"], "avg", "cost/generated_tokens_total", 1000) == 5
    spec = next(t for t in TABLES if t.name == "efficiency")
    eff = efficiency_table(spec, cheap + costly, TableOptions(thresholds=(0.5,)))
    col = "Avg at 1,000 generated tokens"
    assert col in [c.name for c in eff.columns] and "Avg at 10 training seconds" in [c.name for c in eff.columns]
    assert eff.cell("grpo", col).mean == pytest.approx(55.0)  # both at step 10
    assert eff.cell(DSRL_ROW, col).mean == pytest.approx(30.0)  # step 0 (10%) and step 5 (50%)
    assert eff.cell(DSRL_ROW, col).delta.mean == pytest.approx(-25.0)


def test_summarise_is_sample_std():
    assert summarise([1.0, 2.0, 3.0]) == Cell(2.0, 1.0, 3)
    assert summarise([], of=2) == Cell(None, None, 0, 2)
    assert {t.name for t in TABLES} == {"main", "warmup", "warmup_kind", "objectives", "ood", "efficiency"}
