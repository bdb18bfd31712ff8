"""The mini study's document (``docs/mini-study.md``), from the runs in its MLflow store: the prose is
``analysis/study/templates/mini.md``; here are the numbers and tables it holds.

    python -m analysis.study doc --study mini                  # docs/mini-study.md, experiment mini-study
    python -m analysis.study doc --study mini --preset quick   # outputs/mini-study-quick/mini-study.md

It reads the FINISHED runs tagged ``sweep=mini_study`` in one MLflow experiment and the experiment's
``alignment <model>`` runs (``analysis/study/store.py``), names each run's cell from its config, and writes ONE
table of every claim (``analysis/study/claims.py``: the paper's number, the result per task with its 95%
interval, the verdict), then per part the accuracy tables (``analysis/tables.py``, paired hierarchical
bootstrap), the behaviour ratios, the solved-prompt dynamics, the alignment and the figures.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

from ..figures import SOLVED, TRAINING, plot_pass_at_k, plot_series
from .cells import GRPO, Study
from .claims import INCONCLUSIVE, NO_RUNS, NOT_REPRODUCED, REPRODUCED, ClaimRow, claim_rows
from .sections import (
    alignment_table,
    behaviour_table,
    bold,
    cell,
    dynamics_table,
    fmt,
    part_table,
    pass_at_k_table,
    seeds_per_cell,
)
from .spec import FULL, Part, StudySpec
from .store import client_for, read_study, wall_time
from .template import fill

HEADLINE_PART = "a"  # DSRL vs GRPO: its section adds the OOD set's table and Pass@k for every k
FIGURE_PARTS = ("b", "c", "d")  # the parts whose training curves are drawn


def claims_table(study: Study, rows: list[ClaimRow]) -> str:
    """Every claim: the paper's number, per task the result and the verdict, and whether the paper's number
    lies inside the interval."""
    tasks = study.tasks()
    head = (
        ["id", "claim", "paper", "measured here"]
        + [f"{t}: result [95%]" for t in tasks]
        + [f"{t}: verdict" for t in tasks]
        + ["paper's number inside?"]
    )
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        c = row.claim
        if not c.measured:
            lines.append(
                f"| {c.id} | {cell(c.text)} | {cell(c.paper)} | - | "
                + " | ".join("-" for _ in tasks)
                + " | "
                + " | ".join(f"{c.skipped}: {c.untestable}" if i == 0 else c.skipped for i, _ in enumerate(tasks))
                + " | - |"
            )
            continue
        ref = f" (vs {c.reference:g})" if c.reference else ""
        found = [row.tasks[t] for t in tasks]
        values = [fmt(r.interval) + (f" {c.unit}" if r.interval is not None else "") for r in found]
        inside = ", ".join(f"{t}: {r.inside}" for t, r in zip(tasks, found) if r.inside) or "n/a"
        lines.append(
            f"| {c.id} | {cell(c.text)} | {cell(c.paper)} | {cell(c.quantity)}{ref} | "
            + " | ".join(values)
            + " | "
            + " | ".join(bold(r.verdict) for r in found)
            + f" | {inside} |"
        )
    return "\n".join(lines)


def headline(study: Study, rows: list[ClaimRow]) -> str:
    """Counts of verdicts per task, e.g. ``mini: 3 reproduced, 5 not reproduced, 12 inconclusive``."""
    parts = []
    for task in study.tasks():
        verdicts = [row.tasks[task].verdict for row in rows if row.claim.measured]
        counts = {v: verdicts.count(v) for v in (REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE, NO_RUNS)}
        parts.append(f"{task}: " + ", ".join(f"{n} {v}" for v, n in counts.items() if n))
    skipped = [row.claim.skipped for row in rows if not row.claim.measured]
    return "; ".join(parts) + "".join(f"; {skipped.count(s)} {s}" for s in dict.fromkeys(skipped))


def has_ood(study: Study) -> bool:
    return any(k.startswith("eval/ood/") for r in study.runs for k in r.history)


def part_section(spec: StudySpec, study: Study, part: Part) -> str:
    blocks = [f"## ({part.key}) {part.title}", f"Runs: `python train.py -m +sweep/{spec.sweep_dir}={part.sweep}`."]
    for task in study.tasks():
        for ood in (False, True) if part.key == HEADLINE_PART and has_ood(study) else (False,):
            blocks.append(part_table(study, task, part, ood) or f"{task}: no runs.")
        if part.key == HEADLINE_PART and (table := pass_at_k_table(study, task)):
            blocks += [f"#### ({part.key}) {task}: Pass@k on the test set, every k", table]
    return "\n\n".join(blocks)


def per_task(study: Study, key: str, table) -> str:
    """One table per task under its own heading (``no runs`` where the task has none)."""
    return "\n\n".join(f"#### ({key}) {task}\n\n{table(study, task) or 'no runs'}" for task in study.tasks())


def alignment_section(study: Study, folder: Path) -> str:
    blocks = [alignment_table(study) or "no alignment runs in the experiment"]
    for task in study.tasks():
        if task in study.alignment and study.alignment[task].get("png"):
            blocks.append(f"![alignment, {task}]({folder.name}/{study.alignment[task]['png'].name})")
    return "\n\n".join(blocks)


def figures(study: Study, task: str, parts: list[Part], folder: Path) -> list[tuple[str, Path]]:
    """The task's figures, drawn into ``folder``: Pass@k of GRPO and DSRL, each of ``parts``' training
    curves, and the solved-prompt dynamics of the reported cells."""
    groups = study.groups(task)

    def pick(labels):
        return [groups[label] for label in labels if label in groups]

    out = []
    if pick([GRPO, study.dsrl]):
        path = folder / f"a_{task}_pass_at_k.png"
        out.append(("(a) Pass@k", plot_pass_at_k(pick([GRPO, study.dsrl]), ["test", "ood"], study.opts, path)))
    for part in parts:
        assert part.cells is not None, part.key
        if pick(part.cells(study)):
            path = folder / f"{part.key}_{task}_training.png"
            out.append((f"({part.key}) training", plot_series(pick(part.cells(study)), TRAINING, path)))
    if pick(study.reported):
        out.append(("(g) solved dynamics", plot_series(pick(study.reported), SOLVED, folder / f"g_{task}_solved.png")))
    return out


def batch(study: Study) -> str:
    p = study.runs[0].params
    return f"{p.get('prompts_per_step', '?')} prompts × {p.get('rollout.samples_per_prompt', '?')} samples"


def hours(seconds: float) -> str:
    return f"{seconds / 3600:.2f} h ({seconds:,.0f} s)"


def render(spec: StudySpec, preset: str, study: Study, experiment: str, command: str, times: dict, doc: Path) -> str:
    folder = doc.with_suffix("")
    drawn = [p for p in spec.parts if p.key in FIGURE_PARTS]
    figure_links = [
        f"![{title}, {task}]({os.path.relpath(path, doc.parent)})"
        for task in study.tasks()
        for title, path in figures(study, task, drawn, folder)
    ]
    rows = claim_rows(study, spec.claims)
    values = {
        "title": spec.title,
        "experiment": experiment,
        "label": spec.preset(preset).label,
        "command": command,
        "runs": str(len(study.runs)),
        "sweep": spec.sweep_dir,
        "tasks": ", ".join(study.tasks()),
        "alignment_runs": str(int(times["runs"]) - len(study.runs)),
        "T": str(study.total_steps),
        "S": str(study.dsrl_steps),
        "S_plus_1": str(study.dsrl_steps + 1),
        "seeds_per_cell": "\n".join(f"- Seeds per cell, {t}: {seeds_per_cell(study, t)}" for t in study.tasks()),
        "summed": hours(times["summed"]),
        "train": hours(times["train"]),
        "span": hours(times["span"]),
        "lr": study.runs[0].params.get("optim.lr", "?"),
        "batch": batch(study),
        "headline": headline(study, rows),
        "claims_table": claims_table(study, rows),
        "parts": "\n\n".join(part_section(spec, study, part) for part in spec.sweep_parts()),
        "behaviours": per_task(study, "f", behaviour_table),
        "dynamics": per_task(study, "g", dynamics_table),
        "alignment": alignment_section(study, folder),
        "figures": "\n\n".join(figure_links),
    }
    return fill(spec.template, values)


def doc_command(spec: StudySpec, preset: str, experiment: str, out: Optional[Path], dsrl_steps: Optional[int]) -> str:
    """The command that writes the same document again (options at their defaults left out)."""
    words = ["python -m analysis.study doc --study", spec.name]
    if preset != FULL:
        words += ["--preset", preset]
    if experiment != spec.experiment_of(preset):
        words += ["--experiment", experiment]
    if out is not None and Path(out).resolve() != spec.doc_path(preset).resolve():
        words += ["--out", str(out)]
    if dsrl_steps is not None:
        words += ["--dsrl-steps", str(dsrl_steps)]
    return " ".join(words)


def write(
    spec: StudySpec,
    preset: str,
    uri: Optional[str] = None,
    experiment: Optional[str] = None,
    out: Optional[Path] = None,
    dsrl_steps: Optional[int] = None,
    n_boot: int = 2000,
) -> Path:
    """Read the preset's runs (or ``experiment``'s) from the store at ``uri`` and write the document to
    ``out`` (default: the preset's), its figures into a folder beside it."""
    experiment = experiment or spec.experiment_of(preset)
    doc = Path(out) if out else spec.doc_path(preset)
    client = client_for(uri)
    run = f"python -m analysis.study run --study {spec.name}" + (f" --preset {preset}" if preset != FULL else "")
    study = read_study(client, experiment, spec.sweep_dir, doc.with_suffix(""), run, dsrl_steps, n_boot)
    command = doc_command(spec, preset, experiment, out, dsrl_steps)
    doc.write_text(render(spec, preset, study, experiment, command, wall_time(client, experiment, spec.sweep_dir), doc))
    return doc
