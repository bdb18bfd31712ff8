"""Where a study that exports its runs stands, rendered into its docs page from the committed files.

Before the study has finished no claim that compares training runs has a verdict, but its finished runs
are evidence already: this writes how many of the planned runs have finished and what each logged at
every evaluation (Avg@K on the test and OOD sets); and, once they have run, part (f), the base model's
gradient alignment, which needs no training run (its intervals are over responses, not seeds), and part
(g), the NSR-PreRL diagnosis, one training run from the base model. The block sits
between ``<!-- study-progress: NAME -->`` and ``<!-- study-progress: NAME end -->`` in
``docs/studies.md`` and is rendered from ``results/studies/<name>/`` alone (``python -m analysis.study
progress --study smollm2``; the orchestration refreshes it after each export).
"""

from __future__ import annotations

import re
from pathlib import Path

from ..tables import TableOptions
from . import export
from .cells import Study, cell_label, task_of
from .document import ALIGNMENT, DIAGNOSIS, diagnosis_tables, load_alignment, read_json
from .sections import alignment_table
from .spec import ROOT

PAGE = ROOT / "docs" / "studies.md"
SETS = ("test", "ood")


def block_pattern(name: str) -> re.Pattern:
    return re.compile(
        rf"(<!-- study-progress: {re.escape(name)} -->\n).*?(<!-- study-progress: {re.escape(name)} end -->)", re.S
    )


def avg_key(metrics: dict, split: str) -> str | None:
    return next((k for k in sorted(metrics) if k.startswith(f"eval/{split}/avg_at_")), None)


def run_rows(documents: list[dict]) -> tuple[list[int], list[tuple[str, int, dict[int, str]]]]:
    """The evaluation steps, and per run its cell, seed and ``step -> "test / OOD"``."""
    steps: set[int] = set()
    rows = []
    for document in documents:
        metrics = document["metrics"]
        by_split = {s: dict((int(step), v) for step, v in metrics.get(avg_key(metrics, s) or "", [])) for s in SETS}
        cells = {
            step: " / ".join(f"{100 * by_split[s][step]:.1f}%" if step in by_split[s] else "-" for s in SETS)
            for step in by_split["test"]
        }
        steps |= cells.keys()
        rows.append((cell_label(document["params"]), int(document["params"].get("seed", 0)), cells))
    return sorted(steps), sorted(rows, key=lambda r: (r[1], r[0]))


def progress_text(documents: list[dict], planned: int | None) -> str:
    if not documents:
        return "No run has finished yet.\n"
    steps, rows = run_rows(documents)
    k = avg_key(documents[0]["metrics"], "test") or "eval/test/avg_at_K"
    of = f" of the {planned} planned" if planned else ""
    lines = [
        f"{len(documents)}{of} runs have finished. What each logged, test / OOD {k.rsplit('/', 1)[1].replace('avg_at_', 'Avg@')} "
        "at every evaluation (update 0 is the base model):",
        "",
        "| run | seed | " + " | ".join(f"update {s}" for s in steps) + " |",
        "|---|---|" + "---|" * len(steps),
    ]
    lines += [
        f"| {cell} | {seed} | " + " | ".join(cells.get(s, "-") for s in steps) + " |" for cell, seed, cells in rows
    ]
    return "\n".join(lines) + "\n"


def study_task(documents: list[dict]) -> str:
    """The task of the study's runs (one per exporting study): the first run's."""
    return task_of(export.record(documents[0]))


def alignment_text(documents: list[dict], folder: Path) -> str:
    """Part (f)'s table beside the paper's, once its files are in the study's folder ('' before)."""
    found = load_alignment(folder / ALIGNMENT)
    if not found or not documents:
        return ""
    study = Study([], 0, 0, TableOptions(), {study_task(documents): found})  # the table reads no run
    where = f"`{folder.relative_to(ROOT) / ALIGNMENT}/`" if folder.is_relative_to(ROOT) else "its folder"
    return (
        f"\nPart (f), the base model's gradient alignment, needs no training run and has run ({where}; "
        "intervals over its responses):\n\n" + (alignment_table(study) or "") + "\n"
    )


def diagnosis_text(documents: list[dict], folder: Path) -> str:
    """Part (g)'s tables, once its diagnosis is in the study's folder ('' before)."""
    found = read_json(folder / DIAGNOSIS)
    if not found or not documents:
        return ""
    tables = "\n\n".join(diagnosis_tables(study_task(documents), found, {}))
    return f"\nPart (g), the NSR-PreRL diagnosis, is one training run from the base model and has run:\n\n{tables}\n"


def refreshed(text: str, name: str, runs_dir: Path, planned: int | None) -> str:
    pattern = block_pattern(name)
    if not pattern.search(text):
        raise SystemExit(f"{PAGE.name}: no <!-- study-progress: {name} --> block")
    documents = export.load_documents(runs_dir) if runs_dir.exists() else []
    folder = runs_dir.parent
    body = progress_text(documents, planned) + alignment_text(documents, folder) + diagnosis_text(documents, folder)
    return pattern.sub(lambda m: m.group(1) + body + m.group(2), text)


def write(name: str, runs_dir: Path, planned: int | None, check: bool = False) -> bool:
    """Refresh the block (``check``: only say whether it is stale). True when the page was up to date."""
    text = PAGE.read_text()
    new = refreshed(text, name, runs_dir, planned)
    if new != text and not check:
        PAGE.write_text(new)
    return new == text
