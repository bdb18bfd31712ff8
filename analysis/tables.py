"""The paper's tables as data: rows of runs grouped by config, cells of mean ± std over seeds.

Each table is declared once in ``TABLES`` (the sweeps it reads, what a row is, which eval sets its
columns are, how it is built); building is pure, from ``RunRecord``s, and rendering lives in
``analysis/render.py``. Accuracies are in percent, as the paper reports them.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Callable, Optional

from analysis import paper
from analysis.aggregate import (Cell, Group, Step, choose_step, differing_keys, eval_curve,
                                first_step_reaching, group_runs, mean, summarise)
from analysis.dynamics import method_label
from analysis.runs import RunRecord

# Eval sets that are out of distribution: the mini task's ``ood`` and the paper's OOD benchmarks.
OOD_SETS = ("ood", "gpqa_diamond", "mmlu_pro", "bbh", "humaneval")
AVG = "Avg"


@dataclass
class Column:
    name: str
    better: str = "max"  # which mean is best: max, min, or "" (not ranked)
    digits: int = 2
    paper: dict[str, float] = field(default_factory=dict)  # row -> the paper's value


@dataclass
class Table:
    name: str
    title: str
    row_header: str
    rows: list[str]
    columns: list[Column]
    cells: dict[tuple[str, str], Cell]
    notes: list[str] = field(default_factory=list)

    def cell(self, row: str, column: str) -> Cell:
        return self.cells.get((row, column), Cell(None, None, 0))

    def best(self, column: Column) -> set[str]:
        """Rows holding the best mean of a ranked column (ties all marked)."""
        means = {r: self.cell(r, column.name).mean for r in self.rows}
        means = {r: m for r, m in means.items() if m is not None}
        if not column.better or len(means) < 2:
            return set()
        target = (max if column.better == "max" else min)(means.values())
        return {r for r, m in means.items() if m == target}


@dataclass
class TableOptions:
    """What the tables report (``python -m analysis.ablation_table --help``)."""

    metric: str = "avg"  # per-set metric: avg (Avg@K) or a logged one such as pass_at_4
    step: Step = "final"  # final | best (the step with the best mean over the table's sets) | a step
    ood_sets: tuple[str, ...] = OOD_SETS
    thresholds: tuple[float, ...] = (0.45, 0.58)  # efficiency: accuracies (fractions) to reach


def eval_sets(runs: list[RunRecord], metric: str, ood: bool, ood_sets: tuple[str, ...]) -> list[str]:
    """The eval sets logged with ``metric`` by any of ``runs``: the OOD ones or the others."""
    pattern = re.compile(r"eval/([^/]+)/avg_at_\d+$" if metric == "avg" else rf"eval/([^/]+)/{re.escape(metric)}$")
    found = {m.group(1) for run in runs for key in run.history if (m := pattern.match(key))}
    return sorted(s for s in found if (s in ood_sets) == ood)


def setup_notes(runs: list[RunRecord], groups: list[Group], opts: TableOptions) -> list[str]:
    notes = [f"metric: {opts.metric} per eval set, at the {opts.step} step; cells: mean ± sample std over "
             "seeds (runs); best mean per column in bold; - : no run"]
    keys = differing_keys(runs)
    if keys:
        notes.append("config keys that differ between rows: " + ", ".join(keys))
    split = sorted({k for g in groups for k in g.split_by})
    if split:
        notes.append("rows split because their runs differ in: " + ", ".join(split))
    return notes


def accuracy_table(spec: "TableSpec", runs: list[RunRecord], opts: TableOptions) -> Table:
    """Rows × eval sets (+ their average): each cell the mean ± std over the row's seeds."""
    sets = eval_sets(runs, opts.metric, spec.ood, opts.ood_sets)
    groups = ordered_groups(spec, runs)
    columns = [Column(s) for s in sets] + [Column(AVG, paper=spec.paper_avg(groups))]
    cells = {}
    for g in groups:
        values: dict[str, list[float]] = defaultdict(list)
        for run in g.runs:
            curve = eval_curve(run, sets, opts.metric)
            step = choose_step(curve, opts.step)
            if step is None:
                continue
            for s in sets:
                values[s].append(100 * curve[step][s])
            values[AVG].append(100 * mean(list(curve[step].values())))
        for c in columns:
            cells[(g.label, c.name)] = summarise(values[c.name], of=len(g.runs))
    notes = setup_notes(runs, groups, opts) + [n for n in (spec.paper_note,) if n]
    return Table(spec.name, spec.title, spec.row_header, [g.label for g in groups], columns, cells, notes)


def efficiency_table(spec: "TableSpec", runs: list[RunRecord], opts: TableOptions) -> Table:
    """Steps each method needs to first reach each accuracy (mean over seeds that reached it), and
    GRPO's mean steps divided by the method's (> 1: fewer steps than GRPO)."""
    sets = eval_sets(runs, opts.metric, False, opts.ood_sets)
    groups = ordered_groups(spec, runs)
    reference = next((g for g in groups if paper.paper_method(g.runs[0].params) == "GRPO"), None)
    columns, cells = [], {}
    for t in opts.thresholds:
        steps_col = Column(f"steps to {100 * t:g}%", better="min", digits=1)
        ratio_col = Column(f"GRPO/method at {100 * t:g}%", digits=2, paper={
            g.label: paper.STEPS_RATIO[m][t] for g in groups
            if (m := paper.paper_method(g.runs[0].params)) in paper.STEPS_RATIO and t in paper.STEPS_RATIO[m]})
        columns += [steps_col, ratio_col]
        for g in groups:
            reached = [s for run in g.runs if (s := first_step_reaching(eval_curve(run, sets, opts.metric), t)) is not None]
            cells[(g.label, steps_col.name)] = summarise([float(s) for s in reached], of=len(g.runs))
        ref = cells.get((reference.label, steps_col.name)) if reference else None
        for g in groups:
            own = cells[(g.label, steps_col.name)]
            ratio = ref.mean / own.mean if ref and ref.mean is not None and own.mean else None
            cells[(g.label, ratio_col.name)] = Cell(ratio, None, own.n if ratio is not None else 0)
    notes = setup_notes(runs, groups, opts) + [
        f"accuracy: mean of {opts.metric} over {', '.join(sets) or 'no sets'} at each eval step; steps: first "
        "eval step at or above it, over the seeds that reached it (n/runs when some did not); ratio: GRPO's "
        "mean steps / the row's", f"paper ({paper.SETTING}): DSRL 2.5x fewer steps than GRPO to 45%, 1.6x to 58%"]
    return Table(spec.name, spec.title, spec.row_header, [g.label for g in groups], columns, cells, notes)


def ordered_groups(spec: "TableSpec", runs: list[RunRecord]) -> list[Group]:
    return sorted(group_runs(runs, spec.label), key=lambda g: (spec.order(g.runs[0].params), g.label))


def paper_averages(groups: list[Group]) -> dict[str, float]:
    """The paper's average for rows that are one of its methods."""
    return {g.label: paper.AVERAGE[m] for g in groups if (m := paper.paper_method(g.runs[0].params)) in paper.AVERAGE}


def no_paper(groups: list[Group]) -> dict[str, float]:
    return {}


def warmup_paper(groups: list[Group]) -> dict[str, float]:
    """Only S=0 (plain GRPO) has a reported number; per-S values were not found."""
    return {g.label: paper.AVERAGE["GRPO"] for g in groups if int(g.runs[0].params.get("warmup_steps", -1)) == 0}


def method_order(params: dict[str, str]) -> tuple:
    algorithms = ["grpo", "ppo", "rloo", "reinforce_pp", "reinforce_pp_baseline", "dr_grpo", "dapo"]
    algo = params.get("algorithm.name", "")
    return (int(params.get("warmup_steps", 0)) > 0, algorithms.index(algo) if algo in algorithms else 99)


def objective_order(params: dict[str, str]) -> tuple:
    names = ["psr_prerl", "nsr_prerl", "prerl", "psr_rl", "nsr_rl", "rl", "w_reinforce"]
    name = params.get("objective.name", "")
    return (names.index(name) if name in names else 99,)


def warmup_kind_order(params: dict[str, str]) -> tuple:
    return (int(params.get("warmup_steps", 0)) > 0, params.get("objective.name") != "nsr_rl")


@dataclass(frozen=True)
class TableSpec:
    """One paper table: the sweeps it reads, what a row is and how rows sort, which eval sets are its
    columns, the paper's numbers beside them, and how it is built."""

    name: str
    title: str
    sweeps: tuple[str, ...]
    row_header: str
    label: Callable[[dict[str, str]], str]
    order: Callable[[dict[str, str]], tuple]
    build: Callable[["TableSpec", list[RunRecord], TableOptions], Table] = accuracy_table
    figures: bool = True  # training curves, Pass@k and solved counts of its rows
    ood: bool = False
    paper_avg: Callable[[list[Group]], dict[str, float]] = no_paper
    paper_note: Optional[str] = None


TABLES = (
    TableSpec("main", "Main results: in-distribution accuracy per eval set", ("baselines", "seeds"), "method",
              method_label, method_order, paper_avg=paper_averages,
              paper_note=f"paper column: {paper.SETTING}; other baselines' rows not reported"),
    TableSpec("warmup", "Warm-up length S: NSR-PreRL for S updates, then GRPO", ("warmup",), "S",
              lambda p: f"S={p.get('warmup_steps')}", lambda p: (int(p.get("warmup_steps", 0)),),
              paper_avg=warmup_paper, paper_note=paper.NOTES["warmup"]),
    TableSpec("warmup_kind", "Warm-up kind, then GRPO", ("warmup_kind",), "warm-up", method_label,
              warmup_kind_order, paper_avg=paper_averages, paper_note=f"paper column: {paper.SETTING}"),
    TableSpec("objectives", "Objectives alone for the whole run: PSR / NSR / all x PreRL / RL", ("objectives",),
              "objective", method_label, objective_order, paper_note=paper.NOTES["objectives"]),
    TableSpec("ood", "Out-of-distribution accuracy", ("baselines", "seeds"), "method", method_label, method_order,
              ood=True, figures=False, paper_note=paper.NOTES["ood"]),
    TableSpec("efficiency", "Training efficiency: steps to first reach an accuracy", ("baselines", "seeds"),
              "method", method_label, method_order, build=efficiency_table, figures=False),
)


def shown_keys(varied: list[str]) -> list[str]:
    """The varied keys a row is named by: a config group that changed shows as ``<group>.name`` alone."""
    return [k for k in varied if k.endswith(".name") or f"{k.rsplit('.', 1)[0]}.name" not in varied]


def _sortable(value: str | None) -> tuple:
    try:
        return (0, float(value), "")
    except (TypeError, ValueError):
        return (1, 0.0, str(value))


def multirun_spec(varied: list[str]) -> TableSpec:
    """The table of a multirun launched without ``+sweep=NAME``, chosen by the config keys its jobs
    varied: over ``warmup_steps`` the warm-up table, over the algorithm the main table, otherwise rows
    named by the varied keys."""
    by_name = {t.name: t for t in TABLES}
    if varied == ["warmup_steps"]:
        return by_name["warmup"]
    if varied and all(k.startswith("algorithm.") for k in varied):
        return by_name["main"]
    keys = shown_keys(varied)
    return TableSpec("multirun", f"Multirun over {', '.join(keys) or 'seeds only'}", (), ", ".join(keys) or "runs",
                     lambda p: ", ".join(f"{k}={p.get(k)}" for k in keys) or "all",
                     lambda p: tuple(_sortable(p.get(k)) for k in keys))


def build_tables(runs_of: Callable[[tuple[str, ...]], list[RunRecord]], opts: TableOptions,
                 specs: tuple[TableSpec, ...] = TABLES) -> list[Table]:
    """Every table whose sweeps have finished runs (``runs_of(sweeps)`` reads them)."""
    tables = []
    for spec in specs:
        runs = runs_of(spec.sweeps)
        if runs:
            tables.append(spec.build(spec, runs, opts))
    return tables
