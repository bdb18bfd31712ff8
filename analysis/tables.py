"""The paper's tables as data: rows of runs grouped by config, cells with bootstrap intervals.

Each table is declared once in ``TABLES`` (the sweeps it reads, what a row is, which eval sets its
columns are, how it is built); building is pure, from ``RunRecord``s, and rendering lives in
``analysis/render.py``. A cell is a row's mean with its 95% interval from the paired hierarchical
bootstrap of ``prerl/eval/stats.py`` (seeds and problems resampled, problems paired by id across rows),
and its difference from the baseline row with that difference's interval. Accuracies are in
percent, as the paper reports them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Callable, Optional

import numpy as np

from prerl.eval.stats import RowSummary, compare

from . import paper
from .aggregate import (
    Cell,
    Group,
    RowSamples,
    Step,
    StepRule,
    confounds,
    eval_curve,
    first_step_reaching,
    group_runs,
    row_samples,
)
from .dynamics import method_label
from .runs import RunRecord

# Eval sets that are out of distribution: the mini task's ``ood`` and the paper's OOD benchmarks.
OOD_SETS = ("ood", "gpqa_diamond", "mmlu_pro", "bbh", "humaneval")
AVG = "Avg"
FEW_SEEDS = 10  # below this many seeds per row, a table warns that its intervals are too narrow


@dataclass
class Column:
    name: str
    better: str = "max"  # which mean is best: max, min, or "" (not ranked)
    digits: int = 1
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
    baseline: Optional[str] = None  # the row every Δ is taken against
    delta_column: Optional[str] = None  # the column whose Δ is shown as a column of its own

    def cell(self, row: str, column: str) -> Cell:
        return self.cells.get((row, column), Cell(None, None, 0))

    def best(self, column: Column) -> set[str]:
        """The row(s) with the best mean of a ranked column, when that is more than noise: a row other
        than the baseline only if its Δ interval lies wholly on the better side of 0; the baseline only
        if every other row's does on the worse side."""
        means = {r: self.cell(r, column.name).mean for r in self.rows}
        means = {r: m for r, m in means.items() if m is not None}
        if not column.better or len(means) < 2 or self.baseline is None:
            return set()
        target = (max if column.better == "max" else min)(means.values())
        better = (lambda d: d.lo > 0) if column.better == "max" else (lambda d: d.hi < 0)
        worse = (lambda d: d.hi < 0) if column.better == "max" else (lambda d: d.lo > 0)
        deltas = {r: self.cell(r, column.name).delta for r in means if r != self.baseline}
        marked = set()
        for row in (r for r, m in means.items() if m == target):
            if row == self.baseline:
                if deltas and all(d is not None and worse(d) for d in deltas.values()):
                    marked.add(row)
            elif deltas.get(row) is not None and better(deltas[row]):
                marked.add(row)
        return marked

    def within_noise(self, column: str) -> list[str]:
        """Rows whose Δ interval on ``column`` holds 0."""
        return [r for r in self.rows if (d := self.cell(r, column).delta) is not None and not d.excludes(0.0)]


@dataclass
class TableOptions:
    """What the tables report (``python -m analysis.ablation_table --help``)."""

    metric: str = "avg"  # per-set metric: avg (Avg@K) or pass_at_<k>
    step: Step = "final"  # final | best (chosen on ``best_on``, which is then not reported) | a step
    best_on: Optional[str] = None
    ood_sets: tuple[str, ...] = OOD_SETS
    thresholds: tuple[float, ...] = (0.45, 0.58)  # efficiency: accuracies (fractions) to reach
    baseline: Optional[str] = None  # the row label Δs are taken against (default: plain GRPO, else the first row)
    level: float = 0.95
    n_boot: int = 2000
    seed: int = 0  # of the bootstrap

    def rule(self) -> StepRule:
        return StepRule(self.step, self.best_on, self.metric)


def eval_sets(runs: list[RunRecord], metric: str, ood: bool, ood_sets: tuple[str, ...]) -> list[str]:
    """The eval sets logged with ``metric`` by any of ``runs``: the OOD ones or the others."""
    pattern = re.compile(r"eval/([^/]+)/avg_at_\d+$" if metric == "avg" else rf"eval/([^/]+)/{re.escape(metric)}$")
    found = {m.group(1) for run in runs for key in run.history if (m := pattern.match(key))}
    return sorted(s for s in found if (s in ood_sets) == ood)


def baseline_row(groups: list[Group], requested: Optional[str], present) -> Optional[str]:
    """The requested row, else the plain-GRPO row, else the first row that has values."""
    labels = [g.label for g in groups]
    if requested is not None:
        if requested not in labels:
            raise ValueError(f"--baseline {requested!r} is not a row of this table; rows: {labels}")
        return requested if requested in present else None
    grpo = [g.label for g in groups if paper.paper_method(g.runs[0].params) == "GRPO" and g.label in present]
    return grpo[0] if grpo else next((label for label in labels if label in present), None)


def seed_std(matrices: dict[str, np.ndarray], column: str) -> Optional[float]:
    """Sample std over seeds of the per-seed means (of the column's set, or of the mean over sets)."""
    per_seed = np.mean([m.mean(1) for m in matrices.values()], axis=0) if column == AVG else matrices[column].mean(1)
    return float(100 * np.std(per_seed, ddof=1)) if len(per_seed) > 1 else None


def summary_cells(
    groups: list[Group],
    columns: list[Column],
    samples: RowSamples,
    summary: dict[str, RowSummary],
    source: Callable[[Column], str] = lambda c: c.name,
) -> dict[tuple[str, str], Cell]:
    """The cells of ``columns``, each from the comparison's column ``source(column)``, in percent."""
    cells = {}
    for g in groups:
        for c in columns:
            row, key = summary.get(g.label), source(c)
            est = row.estimate.get(key) if row else None
            if est is None:
                cells[(g.label, c.name)] = Cell(None, None, 0, len(g.runs))
                continue
            n = samples.runs[g.label]
            delta = row.delta[key].scaled(100) if row.delta and key in row.delta else None
            cells[(g.label, c.name)] = Cell(
                100 * est.mean,
                seed_std(samples.matrices[g.label], key),
                n,
                len(g.runs) if n != len(g.runs) else None,
                100 * est.lo,
                100 * est.hi,
                delta,
            )
    return cells


def compared(
    groups: list[Group], sets: list[str], opts: TableOptions, step_of
) -> tuple[RowSamples, Optional[str], dict]:
    """Per-problem samples of every row at ``step_of(run)``, the baseline row, and their comparison."""
    samples = row_samples(groups, sets, opts.metric, step_of)
    baseline = baseline_row(groups, opts.baseline, samples.matrices)
    summary = compare(samples.matrices, baseline, AVG, opts.level, opts.n_boot, opts.seed)
    return samples, baseline, summary


def setup_notes(
    spec: "TableSpec",
    runs: list[RunRecord],
    groups: list[Group],
    opts: TableOptions,
    samples: RowSamples,
    baseline: Optional[str],
) -> list[str]:
    level = f"{100 * opts.level:g}%"
    notes = [
        f"metric: {opts.metric} per eval set, at {opts.rule().describe()}; cells: mean [{level} interval] "
        f"(seeds); intervals: paired hierarchical bootstrap over seeds and problems, problems paired by id "
        f"across rows ({opts.n_boot} draws, seed {opts.seed}; prerl/eval/stats.py); - : no run"
    ]
    if baseline is not None:
        notes.append(
            f"Δ: the row's mean minus {baseline}'s, with its {level} interval; bold: the best mean of a "
            "column, only where its Δ interval excludes 0"
        )
    if samples.seeds_only:
        notes.append(
            f"no per-problem results in some runs for {', '.join(samples.seeds_only)}: there the "
            "intervals resample seeds only, and problems are not paired"
        )
    notes += [f"{s}: {n} problems not evaluated in every row are left out" for s, n in samples.unpaired.items()]
    few = sorted({n for n in samples.runs.values() if n < FEW_SEEDS})
    if few:
        notes.append(
            f"rows with {', '.join(map(str, few))} seed(s): intervals from fewer than {FEW_SEEDS} seeds are "
            "too narrow (docs/sweeps.md, 'Reading a table')"
            + ("; one seed's cover the problems only" if 1 in few else "")
        )
    for row, keys in confounds(groups, baseline, spec.own).items():
        notes.append(
            f"warning, confound: {row} differs from {baseline} in more than the table's own keys: " + ", ".join(keys)
        )
    split = sorted({k for g in groups for k in g.split_by})
    if split:
        notes.append("rows split because their runs differ in: " + ", ".join(split))
    return notes


def accuracy_table(spec: "TableSpec", runs: list[RunRecord], opts: TableOptions) -> Table:
    """Rows × eval sets (+ their average): each cell the mean over the row's seeds and problems, its
    interval and its Δ from the baseline row."""
    rule = opts.rule()
    sets = rule.reported(eval_sets(runs, opts.metric, spec.ood, opts.ood_sets))
    groups = ordered_groups(spec, runs)
    columns = [Column(s) for s in sets] + [Column(AVG, paper=spec.paper_avg(groups))]
    samples, baseline, summary = compared(groups, sets, opts, lambda run: rule.pick(run, sets))
    table = Table(
        spec.name,
        spec.title,
        spec.row_header,
        [g.label for g in groups],
        columns,
        summary_cells(groups, columns, samples, summary),
        baseline=baseline,
        delta_column=AVG,
    )
    table.notes = setup_notes(spec, runs, groups, opts, samples, baseline) + [n for n in (spec.paper_note,) if n]
    noise = table.within_noise(AVG)
    if noise:
        table.notes.append(f"within noise of {baseline} on {AVG} (Δ interval holds 0): {', '.join(noise)}")
    return table


def curve_mean(run: RunRecord, sets: list[str], metric: str) -> dict[int, float]:
    return {step: float(np.mean(list(values.values()))) for step, values in eval_curve(run, sets, metric).items()}


def budget_step(run: RunRecord, sets: list[str], metric: str, cost: str, budget: float) -> Optional[int]:
    """The last eval step by which the run had spent at most ``budget`` of ``cost`` (0 at step 0)."""
    spent = run.history.get(cost, {})
    steps = [s for s in eval_curve(run, sets, metric) if (0.0 if s == 0 else spent.get(s, float("inf"))) <= budget]
    return max(steps) if steps else None


BUDGETS = {"cost/generated_tokens_total": "generated tokens", "cost/train_seconds_total": "training seconds"}


def efficiency_table(spec: "TableSpec", runs: list[RunRecord], opts: TableOptions) -> Table:
    """Steps each method needs to first reach each accuracy (over the seeds that reached it) and the
    baseline's mean steps divided by the method's (> 1: fewer steps); then the accuracy at an equal
    budget of generated tokens and of training seconds (the largest every run spent)."""
    sets = eval_sets(runs, opts.metric, False, opts.ood_sets)
    groups = ordered_groups(spec, runs)
    baseline = baseline_row(groups, opts.baseline, {g.label for g in groups})
    columns, cells, notes = [], {}, []
    for t in opts.thresholds:
        steps_col = Column(f"steps to {100 * t:g}%", better="min")
        ratio_col = Column(
            f"{baseline}/method at {100 * t:g}%",
            better="",
            digits=2,
            paper={
                g.label: paper.STEPS_RATIO[m][t]
                for g in groups
                if (m := paper.paper_method(g.runs[0].params)) in paper.STEPS_RATIO and t in paper.STEPS_RATIO[m]
            },
        )
        columns += [steps_col, ratio_col]
        reached = {
            g.label: [
                float(s)
                for run in g.runs
                if (s := first_step_reaching(eval_curve(run, sets, opts.metric), t)) is not None
            ]
            for g in groups
        }
        matrices = {label: {steps_col.name: np.array(v)[:, None]} for label, v in reached.items() if v}
        summary = compare(
            matrices, baseline if baseline in matrices else None, None, opts.level, opts.n_boot, opts.seed
        )
        for g in groups:
            row = summary.get(g.label)
            if row is None:
                cells[(g.label, steps_col.name)] = Cell(None, None, 0, len(g.runs))
                continue
            est, n = row.estimate[steps_col.name], len(reached[g.label])
            std = float(np.std(reached[g.label], ddof=1)) if n > 1 else None
            cells[(g.label, steps_col.name)] = Cell(
                est.mean,
                std,
                n,
                len(g.runs) if n != len(g.runs) else None,
                est.lo,
                est.hi,
                row.delta.get(steps_col.name) if row.delta else None,
            )
        ref = cells.get((baseline, steps_col.name))
        for g in groups:
            own = cells[(g.label, steps_col.name)]
            ratio = ref.mean / own.mean if ref and ref.mean is not None and own.mean else None
            cells[(g.label, ratio_col.name)] = Cell(ratio, None, own.n if ratio is not None else 0)
    for cost, what in BUDGETS.items():
        if not all(cost in run.history for run in runs):
            notes.append(f"some runs did not log {cost} (older than cost logging): no column at equal {what}")
            continue
        budget = min(max(run.history[cost].values()) for run in runs)
        col = Column(f"{AVG} at {budget:,.0f} {what}")
        columns.append(col)

        def step_of(run, cost=cost, budget=budget):
            return budget_step(run, sets, opts.metric, cost, budget)

        samples, _, summary = compared(groups, sets, replace(opts, baseline=baseline), step_of)
        cells |= summary_cells(groups, [col], samples, summary, source=lambda c: AVG)
    notes = [
        f"accuracy: mean of {opts.metric} over {', '.join(sets) or 'no sets'} at each eval step; steps: first "
        f"eval step at or above it, over the seeds that reached it (n/runs when some did not), with its "
        f"{100 * opts.level:g}% interval over seeds; ratio: {baseline}'s mean steps / the row's; at equal "
        "budget: each run at its last eval step within the budget, the largest budget every run spent",
        f"bold: the best mean of a column where its Δ from {baseline} excludes 0",
        f"paper ({paper.SETTING}): DSRL 2.5x fewer steps than GRPO to 45%, 1.6x to 58%",
    ] + notes
    return Table(
        spec.name, spec.title, spec.row_header, [g.label for g in groups], columns, cells, notes, baseline=baseline
    )


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
    """Methods without a warm-up first, GRPO (the paper's baseline) first among them, then by name."""
    algo = params.get("algorithm.name", "")
    return (int(params.get("warmup_steps", 0)) > 0, algo != "grpo", algo)


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
    own: tuple[str, ...] = ()  # config keys rows may differ in; any other difference is a confound


METHOD_KEYS = ("algorithm.name", "warmup_steps", "objective.name")  # what a method of the main table is


TABLES = (
    TableSpec(
        "main",
        "Main results: in-distribution accuracy per eval set",
        ("baselines", "seeds"),
        "method",
        method_label,
        method_order,
        paper_avg=paper_averages,
        paper_note=f"paper column: {paper.SETTING}; other baselines' rows not reported",
        own=METHOD_KEYS,
    ),
    TableSpec(
        "warmup",
        "Warm-up length S: NSR-PreRL for S updates, then GRPO",
        ("warmup",),
        "S",
        lambda p: f"S={p.get('warmup_steps')}",
        lambda p: (int(p.get("warmup_steps", 0)),),
        paper_avg=warmup_paper,
        paper_note=paper.NOTES["warmup"],
        own=("warmup_steps",),
    ),
    TableSpec(
        "warmup_kind",
        "Warm-up kind, then GRPO",
        ("warmup_kind",),
        "warm-up",
        method_label,
        warmup_kind_order,
        paper_avg=paper_averages,
        paper_note=f"paper column: {paper.SETTING}",
        own=("objective.name", "warmup_steps"),
    ),
    TableSpec(
        "objectives",
        "Objectives alone for the whole run: PSR / NSR / all x PreRL / RL",
        ("objectives",),
        "objective",
        method_label,
        objective_order,
        paper_note=paper.NOTES["objectives"],
        own=("objective.name",),
    ),
    TableSpec(
        "ood",
        "Out-of-distribution accuracy",
        ("baselines", "seeds"),
        "method",
        method_label,
        method_order,
        ood=True,
        figures=False,
        paper_note=paper.NOTES["ood"],
        own=METHOD_KEYS,
    ),
    TableSpec(
        "efficiency",
        "Training efficiency: steps to first reach an accuracy, accuracy at equal cost",
        ("baselines", "seeds"),
        "method",
        method_label,
        method_order,
        build=efficiency_table,
        figures=False,
        own=METHOD_KEYS,
    ),
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
    return TableSpec(
        "multirun",
        f"Multirun over {', '.join(keys) or 'seeds only'}",
        (),
        ", ".join(keys) or "runs",
        lambda p: ", ".join(f"{k}={p.get(k)}" for k in keys) or "all",
        lambda p: tuple(_sortable(p.get(k)) for k in keys),
        own=tuple(varied),
    )


def build_tables(
    runs_of: Callable[[tuple[str, ...]], list[RunRecord]], opts: TableOptions, specs: tuple[TableSpec, ...] = TABLES
) -> list[Table]:
    """Every table whose sweeps have finished runs (``runs_of(sweeps)`` reads them)."""
    tables = []
    for spec in specs:
        runs = runs_of(spec.sweeps)
        if runs:
            tables.append(spec.build(spec, runs, opts))
    return tables
