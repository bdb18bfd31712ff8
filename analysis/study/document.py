"""A study's document, from its committed files alone: the exported runs, the alignment, the diagnosis,
the launches, and the mini study's table; the prose is the template ``analysis/study/templates/<name>``,
the numbers are filled in here.

    python -m analysis.study doc --study smollm2                 # docs/smollm2-study.md
    python -m analysis.study doc --study smollm2 --preset quick  # outputs/studies/smollm2-quick/...
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from ..aggregate import Group
from ..figures import TRAINING, plot_pass_at_k, plot_series
from ..nsr_diagnostics import summary as diagnostics_summary
from ..tables import TableOptions
from . import measures
from .cells import GRPO, Study, infer_dsrl_steps, task_of
from .claims import INCONCLUSIVE, NO_RUNS, NOT_REPRODUCED, REPRODUCED, ClaimRow, claim_rows
from .export import duration_s, load_documents, record
from .mini_columns import MiniCell, read_mini_columns
from .quantities import FINAL, accuracy_contrast
from .sections import (
    alignment_table,
    behaviour_table,
    bold,
    cell,
    fmt,
    part_table,
    pass_at_k_table,
    seeds_per_cell,
)
from .spec import FULL, ROOT, Part, StudySpec
from .template import fill

ALIGNMENT, DIAGNOSIS, PLAN, LAUNCHES = "alignment", "diagnostics/nsr_prerl.json", "study.json", "launches.json"
REAL_SETS = ("test", "ood", "math500_level1")


@dataclass
class Evidence:
    """Everything the document reads, loaded from a results folder."""

    spec: StudySpec
    preset: str
    folder: Path
    documents: list[dict]
    study: Study
    task: str
    plan: dict = field(default_factory=dict)
    launches: list[dict] = field(default_factory=list)
    diagnosis: Optional[dict] = None
    mini_tasks: list[str] = field(default_factory=list)
    mini: dict[str, dict[str, MiniCell]] = field(default_factory=dict)
    mini_classes: dict[str, dict] = field(default_factory=dict)


def read_json(path: Path, default=None):
    return json.loads(path.read_text()) if path.exists() else default


def load_alignment(folder: Path) -> Optional[dict]:
    """``alignment.json``, its token table and plot, as ``Study.alignment[task]`` holds them."""
    if not (folder / "alignment.json").exists():
        return None
    tokens = np.load(folder / "tokens.npz")
    png = folder / "alignment.png"
    return {
        "json": json.loads((folder / "alignment.json").read_text()),
        "tokens": {k: tokens[k] for k in tokens.files},
        "png": png if png.exists() else None,
    }


def load_evidence(spec: StudySpec, preset: str, folder: Optional[Path] = None, n_boot: int = 2000) -> Evidence:
    folder = Path(folder) if folder else spec.results_dir(preset)
    documents = load_documents(folder / "runs")
    if not documents:
        raise SystemExit(
            f"no exported runs in {folder / 'runs'}: run `python -m analysis.study run --study {spec.name}"
            + (f" --preset {preset}`" if preset != FULL else "`")
            + " first (or `export` a store's runs there)"
        )
    runs = [record(d) for d in documents]
    plan = read_json(folder / PLAN, {})
    totals = {int(r.params.get("total_steps", 0)) for r in runs}
    if len(totals) != 1:
        raise SystemExit(f"{folder}: runs of different total_steps {sorted(totals)}: one folder per preset")
    dsrl = plan.get("dsrl_steps") or infer_dsrl_steps(runs)
    if dsrl is None:
        raise SystemExit(f"{folder}: cannot tell DSRL's warm-up length (no {PLAN}, no single NSR-RL control)")
    tasks = sorted({task_of(r) for r in runs})
    task = tasks[0]
    alignment = load_alignment(folder / ALIGNMENT)
    study = Study(runs, int(dsrl), totals.pop(), TableOptions(n_boot=n_boot), {task: alignment} if alignment else {})
    mini_tasks, mini = read_mini_columns(ROOT / spec.mini_doc)
    mini_classes = {
        t: json.loads((ROOT / p).read_text())["base_classes"]
        for t, p in spec.mini_base_classes.items()
        if (ROOT / p).exists()
    }
    return Evidence(
        spec,
        preset,
        folder,
        documents,
        study,
        task,
        plan,
        read_json(folder / LAUNCHES, []),
        read_json(folder / DIAGNOSIS),
        mini_tasks,
        mini,
        mini_classes,
    )


# --- small formatters ------------------------------------------------------------------------------


def pct(value: Optional[float], digits: int = 1) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{100 * value:.{digits}f}%"


def num(value: Optional[float], digits: int = 2) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def hours(seconds: float) -> str:
    return f"{seconds / 3600:.2f} h ({seconds:,.0f} s)"


def table(head: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(cell(h) for h in head) + " |", "|" + "---|" * len(head)]
    return "\n".join(lines + ["| " + " | ".join(cell(c) for c in r) + " |" for r in rows])


# --- sections --------------------------------------------------------------------------------------


def provenance(ev: Evidence, command: str) -> str:
    label = ev.spec.preset(ev.preset).label
    where = os.path.relpath(ev.folder, ROOT)
    return (
        f"Generated by `analysis/study/document.py` from the {len(ev.documents)} exported runs in `{where}/runs/` "
        f"(with `{where}/alignment/` and `{where}/diagnostics/`): {label}. Nothing here reads an MLflow store. "
        f"Regenerate with `{command}`."
    )


def preview(ev: Evidence) -> str:
    p = ev.spec.preset(ev.preset)
    if not p.preview:
        return ""
    return (
        f"> **A preview, not a result.** This document was written by {p.label}. Its intervals come from one "
        "or two seeds and a handful of problems and its runs are far shorter than the study's; read it as a "
        "check that every part runs on this machine, never as evidence for or against a claim.\n"
    )


def shared_setting(ev: Evidence) -> str:
    p = ev.study.runs[0].params
    return (
        f"lr {p.get('optim.lr', '?')}, {p.get('prompts_per_step', '?')} prompts × "
        f"{p.get('rollout.samples_per_prompt', '?')} samples per update at temperature "
        f"{p.get('rollout.temperature', '?')}, ≤ {p.get('rollout.max_new_tokens', '?')} new tokens, "
        f"T = {ev.study.total_steps} updates, DSRL's S = {ev.study.dsrl_steps}, evaluation every "
        f"{p.get('eval.every_steps', '?')} updates with K = {p.get('eval.samples_per_prompt', '?')} samples at "
        f"temperature {p.get('eval.temperature', '?')}, model.autocast={p.get('model.autocast', '?')}, GRPO's clip, "
        "each objective's own `loss_coef`"
    )


def wall_time(ev: Evidence) -> dict[str, float]:
    spans = [(d["start_time"], d["end_time"]) for d in ev.documents if d.get("start_time") and d.get("end_time")]
    train = [r.history.get("cost/train_seconds_total", {}) for r in ev.study.runs]
    alignment = ev.study.alignment.get(ev.task)
    return {
        "summed": sum(duration_s(d) or 0.0 for d in ev.documents),
        "train": sum(h[max(h)] for h in train if h),
        "span": (max(e for _, e in spans) - min(s for s, _ in spans)) / 1000 if spans else 0.0,
        "alignment": float(alignment["json"].get("seconds", 0.0)) if alignment else 0.0,
        "diagnosis": float((ev.diagnosis or {}).get("seconds", 0.0)),
        "launches": sum(float(x.get("seconds", 0.0)) for x in ev.launches),
    }


def setup(ev: Evidence) -> str:
    times = wall_time(ev)
    seeds = ev.plan.get("seeds", {})
    per_part = ", ".join(f"({k}) {n}" for k, n in seeds.items()) or "see the runs below"
    return "\n".join(
        [
            f"- Task: {ev.task}; {len(ev.documents)} finished training runs, {len(ev.study.groups(ev.task))} cells.",
            f"- One shared setting for every method, none tuned: {shared_setting(ev)} (the preset "
            "`experiment=smollm2_dsrl` plus this document's preset).",
            f"- Seeds per part: {per_part}. Seeds per cell: {seeds_per_cell(ev.study, ev.task)}.",
            f"- Wall time: the runs' durations sum to {hours(times['summed'])} (logged training seconds "
            f"{hours(times['train'])}); first start to last end {hours(times['span'])}; the alignment "
            f"{hours(times['alignment'])}, the diagnosis {hours(times['diagnosis'])}; the launches below "
            f"{hours(times['launches'])} in all.",
        ]
    )


def verdict_rule() -> str:
    return (
        "Verdict rule (the mini study's, per claim and task, on the 95% interval of the quantity measured): "
        "**reproduced** if the interval excludes the reference value (0 unless stated) on the paper's side; "
        "**not reproduced** if it excludes it on the other side; **inconclusive at this power** if it holds "
        "it. Accuracies: the paired hierarchical bootstrap of `prerl/eval/stats.py` (seeds and problems, problems "
        "paired by id); training quantities over seeds; alignment over responses."
    )


def verdict_table(ev: Evidence, rows: list[ClaimRow]) -> str:
    head = [
        "id",
        "claim",
        "paper",
        "measured on the real model",
        f"{ev.task}: result [95%]",
        f"{ev.task}: verdict",
        *(f"{t}: result, verdict" for t in ev.mini_tasks),
        "verdict changes vs",
    ]
    out = []
    for row in rows:
        c = row.claim
        interval, verdict = row.on(ev.task).interval, row.on(ev.task).verdict
        mini = ev.mini.get(c.id, {})
        minis = [
            f"{mini[t].result}; {bold(mini[t].verdict)}" if t in mini else "not in docs/mini-study.md"
            for t in ev.mini_tasks
        ]
        if not c.measured:
            out.append([c.id, c.text, c.paper, "-", "-", verdict, *minis, "-"])
            continue
        ref = f" (vs {c.reference:g})" if c.reference else ""
        value = fmt(interval) + (f" {c.unit}" if interval is not None else "")
        out.append(
            [
                c.id,
                c.text,
                c.paper,
                c.quantity + ref,
                value,
                bold(verdict),
                *minis,
                ", ".join(measures.changed(verdict, mini)) or "-",
            ]
        )
    return table(head, out)


def why(ev: Evidence, claim_id: str, quantity: str = "") -> str:
    """What this study's diagnostics say about a claim whose verdict changes."""
    if claim_id.startswith(("7.5-nsr", "7.3-nsr")):
        real = copied_weights(ev)
        if real:
            return f"Copied numbers' share of the pre-train-space gradient weight: {real} (part g)."
    if claim_id.startswith("2.3-"):
        found = ev.study.alignment.get(ev.task)
        if found:
            s = found["json"]["summary"]
            return (
                f"Real model: mean cosine {num(s.get('cosine_mean'))}, {pct(s.get('negative_frac'))} negative (part f)."
            )
    if claim_id.startswith("7.6-") and "paper's" in quantity:
        return (
            "The real model's column counts the paper's own markers, which the mini corpora could not write "
            "(their columns count the repaired slips and re-checks of the mini corpora; part e)."
        )
    if claim_id.startswith("7.6-"):
        return "Part (e) gives each behaviour's base count and its ratios after the warm-up and at the end."
    return "No diagnostic of this study isolates the cause."


def copied_weights(ev: Evidence) -> str:
    parts = []
    if ev.diagnosis:
        w = measures.copied_weight(ev.diagnosis["base_classes"])
        if w is not None:
            parts.append(f"{ev.task} {pct(w, 0)}")
    for t, classes in ev.mini_classes.items():
        w = measures.copied_weight(classes)
        if w is not None:
            parts.append(f"{t} {pct(w, 0)}")
    return ", ".join(parts)


def disagreements(ev: Evidence, rows: list[ClaimRow]) -> str:
    lines = []
    for row in rows:
        c = row.claim
        interval, verdict = row.on(ev.task).interval, row.on(ev.task).verdict
        mini = ev.mini.get(c.id, {})
        tasks = measures.changed(verdict, mini)
        if not c.measured or not tasks:
            continue
        others = ", ".join(f"{t} {mini[t].verdict} ({mini[t].result})" for t in mini)
        lines.append(
            f"- `{c.id}` ({c.text}): real model **{verdict}** ({fmt(interval)} {c.unit}); {others}. {why(ev, c.id, c.quantity)}"
        )
    missing = [row.claim.id for row in rows if row.on(ev.task).verdict == NO_RUNS]
    if not lines:
        lines.append("No claim changes verdict between the real model and the mini tasks.")
    if missing:
        lines.append(f"\nNot measured on the real model (no runs of their cells): {', '.join(missing)}.")
    return "\n".join(lines)


def answers(ev: Evidence, rows: list[ClaimRow]) -> str:
    by_id = {row.claim.id: row.on(ev.task) for row in rows}
    s, task = ev.study, ev.task
    curve = measures.eval_curves(s, task, "NSR-PreRL alone")
    base = measures.mean_or_none(curve.get(0, []))
    final = measures.mean_or_none(curve[max(curve)]) if curve else None
    change = by_id["7.5-nsr-prerl-effective"].interval
    kind = measures.collapse_kind(change, base)
    said = {
        "helps": "It helps: the interval of its final − base accuracy lies above 0, as the paper says.",
        "collapses": "It collapses: accuracy falls below half of the base model's, as on `mini`.",
        "degrades": "It degrades accuracy (the interval lies below 0), but keeps more than half of the base "
        "model's: no collapse.",
        "neither": "Neither, at this power: the interval holds 0.",
        "unknown": "Not measured: the study has no finished NSR-PreRL-alone runs.",
    }[kind]
    points = ", ".join(f"{step}: {np.mean(v):.1f}%" for step, v in curve.items())
    weights = copied_weights(ev)
    q1 = (
        f"**Does NSR-PreRL alone help or collapse on the real model?** {said} Trained alone for T = {s.total_steps} "
        f"updates ({len(s.groups(task).get('NSR-PreRL alone', Group('', [])).runs)} seed(s)), its test Avg@K "
        f"went from {num(base, 1)}% to {num(final, 1)}% (final − base {fmt(change)} points; by update: {points or '-'})."
        + (
            f" On the base model's responses, the tokens copied from the prompt carry this share of the "
            f"pre-train-space gradient weight: {weights} (part g)."
            if weights
            else ""
        )
    )
    dsrl, verdict = by_id["7.1-dsrl-beats-grpo"].interval, by_id["7.1-dsrl-beats-grpo"].verdict
    ood = by_id["7.4-dsrl-ood"].interval
    math500 = accuracy_contrast(s, task, [(s.dsrl, FINAL, 1), (GRPO, FINAL, -1)], "math500_level1")
    verdict_said = {
        REPRODUCED: "Yes: DSRL ends above GRPO on the test set, the interval excluding 0.",
        NOT_REPRODUCED: "No: DSRL ends below GRPO on the test set, the interval excluding 0.",
        INCONCLUSIVE: "Not at this power: the interval of DSRL − GRPO on the test set holds 0.",
    }.get(verdict, "Not measured: the study has no finished runs of both cells.")
    q2 = (
        f"**Does DSRL beat GRPO at equal updates?** {verdict_said} DSRL − GRPO at update {s.total_steps}: "
        f"{fmt(dsrl)} points on the test set, {fmt(ood)} on the OOD set, {fmt(math500)} on MATH-500 Level 1 "
        f"(95% paired intervals; the paper: +1.75 on Qwen3-4B)."
    )
    return q1 + "\n\n" + q2


def accuracy_tables(ev: Evidence, part: Part) -> list[str]:
    out = []
    for ood in (False, True):
        text = part_table(ev.study, ev.task, part, ood)
        if text:
            out.append(text)
    return out or [f"{ev.task}: no runs."]


def sets_logged(ev: Evidence) -> list[str]:
    found = {k.split("/")[1] for r in ev.study.runs for k in r.history if k.startswith("eval/")}
    return [s for s in (*REAL_SETS, *sorted(found - set(REAL_SETS))) if s in found]


def figure(path: Path, doc: Path, title: str) -> str:
    return f"![{title}]({os.path.relpath(path, doc.parent)})"


def part_a(ev: Evidence, part: Part, figures: Path, doc: Path) -> str:
    out = accuracy_tables(ev, part)
    for eval_set in sets_logged(ev):
        t = pass_at_k_table(ev.study, ev.task, eval_set)
        if t:
            out += [f"#### (a) Pass@k on `{eval_set}`, every k", "", t]
    groups = [g for label in part.cells(ev.study) if (g := ev.study.groups(ev.task).get(label))]
    if groups:
        path = plot_pass_at_k(groups, sets_logged(ev), ev.study.opts, figures / "a_pass_at_k.png")
        out.append(figure(path, doc, "(a) Pass@k"))
    return "\n\n".join(out)


def training_figure(ev: Evidence, part: Part, figures: Path, doc: Path) -> list[str]:
    groups = [g for label in part.cells(ev.study) if (g := ev.study.groups(ev.task).get(label))]
    if not groups:
        return []
    path = plot_series(groups, TRAINING, figures / f"{part.key}_training.png")
    return [figure(path, doc, f"({part.key}) training accuracy and response length")]


def curves_tables(ev: Evidence, cells: list[str]) -> list[str]:
    s, task = ev.study, ev.task
    present = [c for c in cells if c in s.groups(task)]
    if not present:
        return []
    steps = sorted({step for c in present for step in measures.eval_curves(s, task, c)})
    acc = [
        [c, *(num(measures.mean_or_none(measures.eval_curves(s, task, c).get(step, [])), 1) for step in steps)]
        for c in present
    ]
    updates = measures.length_points(s)
    length = [
        [c, *(num(measures.mean_or_none(measures.length_at(s, task, c, u)), 1) for u in updates)] for c in present
    ]
    return [
        "Test Avg@K (%) by eval step, mean over seeds:",
        table(["cell", *(f"step {x}" for x in steps)], acc),
        "Training response length (tokens) by update, mean over seeds:",
        table(["cell", *(f"update {u}" for u in updates)], length),
    ]


def part_generic(ev: Evidence, part: Part, figures: Path, doc: Path, curves: bool = False) -> str:
    out = accuracy_tables(ev, part)
    if curves:
        out += curves_tables(ev, part.cells(ev.study))
    out += training_figure(ev, part, figures, doc)
    return "\n\n".join(out)


def claims_subtable(ev: Evidence, rows: list[ClaimRow]) -> str:
    """Some rows of the verdict table, the real model's column only."""
    return table(
        ["id", "measured", "result [95%]", "verdict"],
        [[r.claim.id, r.claim.quantity, fmt(r.on(ev.task).interval), bold(r.on(ev.task).verdict)] for r in rows],
    )


def part_e(ev: Evidence, rows: list[ClaimRow]) -> str:
    paper = behaviour_table(ev.study, ev.task, ("paper_transitions", "paper_reflections"))
    broad = behaviour_table(ev.study, ev.task)
    lines = [
        "The paper's markers:",
        paper or "no runs",
        "The project's broader rule lists (transitions, reflections and the four behaviours by rules):",
        broad or "no runs",
        "The behaviour claims (from the table above):",
        claims_subtable(ev, [r for r in rows if r.claim.id.startswith("7.6-")]),
    ]
    return "\n\n".join(lines)


def part_f(ev: Evidence, doc: Path) -> str:
    found = ev.study.alignment.get(ev.task)
    if not found:
        return "No alignment results in this study's folder."
    out = [alignment_table(ev.study) or ""]
    tokens = found["tokens"]
    out += [
        "Mean |gap| by token position:",
        table(
            ["positions", "tokens", "mean |gap| (nats)"],
            [[b.label, str(b.tokens), num(b.abs_gap, 3)] for b in measures.gap_by_position(tokens)],
        ),
        "Mean |gap| by entropy quartile of the policy at the token:",
        table(
            ["entropy", "tokens", "mean |gap| (nats)"],
            [[b.label, str(b.tokens), num(b.abs_gap, 3)] for b in measures.gap_by_entropy(tokens)],
        ),
    ]
    args = found["json"].get("args", {})
    if args:
        out.append(
            f"`python -m analysis.alignment --model {args.get('model')} --data {args.get('data')} --set "
            f"{args.get('set')} --problems {args.get('problems')} --samples {args.get('samples')} --temperature "
            f"{args.get('temperature')} --max-new-tokens {args.get('max_new_tokens')}`"
        )
    if found.get("png"):
        copy = doc.with_suffix("") / "f_alignment.png"  # beside the document, as its other figures
        copy.write_bytes(Path(found["png"]).read_bytes())
        out.append(figure(copy, doc, "(f) alignment"))
    return "\n\n".join(out)


def class_table(rows: list[measures.ClassRow]) -> str:
    return table(
        ["task", "class", "share of tokens", "log π with prompt", "log π with c", "gradient weight, post / pre"],
        [
            [
                r.task,
                r.cls,
                pct(r.share),
                num(r.logp_post),
                num(r.logp_pre),
                f"{pct(r.weight_post, 0)} / {pct(r.weight_pre, 0)}",
            ]
            for r in rows
        ],
    )


def diagnosis_tables(task: str, d: dict, mini_classes: dict[str, dict]) -> list[str]:
    """Part (g)'s diagnosis ``d``: where the base model's gradient weight lands per token class (beside
    the mini tasks' ``mini_classes``), then NSR-PreRL's updates one by one."""
    real = measures.class_rows(task, d["base_classes"])
    wrong = measures.class_rows(f"{task}, wrong responses", d.get("base_classes_wrong", {}))
    mini = [r for t, classes in mini_classes.items() for r in measures.class_rows(t, classes)]
    out = [
        f"Base-model responses to the first {d.get('probe_problems', '?')} test problems "
        f"(probe accuracy {pct(d.get('probe_accuracy'))})"
        + (
            "; the mini rows are the committed `docs/nsr-prerl-investigation/base-*.json`, whose classes are "
            "the column task's (`operand`: digits copied from the prompt):"
            if mini
            else ":"
        ),
        class_table(real + wrong + mini),
    ]
    if d.get("updates"):
        out += [
            f"NSR-PreRL trained alone from the base model for {d['steps']} updates, update by update "
            "(`analysis.nsr_diagnostics`; KL to the base in both spaces on fixed base samples, and per "
            "class the share of tokens whose π(y_t | x) at least halved):",
            diagnostics_summary({task: d}),
        ]
    return out


def part_g(ev: Evidence, rows: list[ClaimRow]) -> str:
    d = ev.diagnosis
    out = diagnosis_tables(ev.task, d, ev.mini_classes) if d else ["No diagnosis in this study's folder."]
    collapse = ("7.5-nsr-prerl-effective", "7.5-nsr-beats-psr", "7.3-nsr-prerl-20-vs-rl-60")
    out += [
        "Whether the collapse happens — NSR-PreRL alone against the base model (part c's runs):",
        claims_subtable(ev, [r for r in rows if r.claim.id in collapse]),
    ]
    return "\n\n".join(out)


def runs_section(ev: Evidence) -> str:
    cells = []
    for label, group in sorted(ev.study.groups(ev.task).items()):
        cells.append([label, str(len(group.runs)), ", ".join(sorted(r.seed for r in group.runs))])
    launches = [
        [
            str(i + 1),
            str(x.get("started", "")),
            str(x.get("preset", "")),
            str(x.get("planned", "")),
            str(x.get("finished", "")),
            str(x.get("skipped", "")),
            str(x.get("missing", "")),
            hours(float(x.get("seconds", 0.0))),
            str(x.get("machine", "")),
            str(x.get("commit", ""))[:10],
        ]
        for i, x in enumerate(ev.launches)
    ]
    out = [
        table(["cell", "runs", "seeds"], cells),
        "Each launch of `python -m analysis.study run` (a relaunch skips every run that finished):",
        table(
            [
                "launch",
                "started",
                "preset",
                "runs planned",
                "finished in this launch",
                "skipped (finished before)",
                "not finished",
                "wall time",
                "machine",
                "commit",
            ],
            launches,
        )
        if launches
        else "No launch record (runs exported by hand).",
        f"Exported run files: `{os.path.relpath(ev.folder / 'runs', ROOT)}/` (one per run: config, config_hash, "
        "tags with machine and commit, metric histories, per-problem results).",
    ]
    return "\n\n".join(out)


def render(ev: Evidence, doc: Path, command: str) -> str:
    rows = claim_rows(ev.study, ev.spec.claims)
    figures = doc.with_suffix("")
    figures.mkdir(parents=True, exist_ok=True)
    parts = {p.key: p for p in ev.spec.parts}
    values = {
        "title": ev.spec.title,
        "provenance": provenance(ev, command),
        "preview": preview(ev),
        "setup": setup(ev),
        "answers": answers(ev, rows),
        "verdict_rule": verdict_rule(),
        "verdict_table": verdict_table(ev, rows),
        "disagreements": disagreements(ev, rows),
        "S": str(ev.study.dsrl_steps),
        "S_plus_1": str(ev.study.dsrl_steps + 1),
        "T": str(ev.study.total_steps),
        "part_a": part_a(ev, parts["a"], figures, doc),
        "part_b": part_generic(ev, parts["b"], figures, doc),
        "part_c": part_generic(ev, parts["c"], figures, doc, curves=True),
        "part_d": part_generic(ev, parts["d"], figures, doc),
        "part_e": part_e(ev, rows),
        "part_f": part_f(ev, doc),
        "part_g": part_g(ev, rows),
        "runs": runs_section(ev),
    }
    return fill(ev.spec.template, values)


def doc_command(spec: StudySpec, preset: str) -> str:
    return f"python -m analysis.study doc --study {spec.name}" + (f" --preset {preset}" if preset != FULL else "")


def write(
    spec: StudySpec, preset: str, folder: Optional[Path] = None, out: Optional[Path] = None, n_boot: int = 2000
) -> Path:
    ev = load_evidence(spec, preset, folder, n_boot)
    doc = Path(out) if out else spec.doc_path(preset)
    doc.parent.mkdir(parents=True, exist_ok=True)
    text = render(ev, doc, doc_command(spec, preset))
    doc.write_text(text)
    return doc
