"""The mini tasks' verdicts, read from the committed ``docs/mini-study.md``.

The mini study's runs live in one machine's MLflow store and are not exported, so a study that sets its
results beside the mini tasks' reads them from the mini study's own claims table ("## Every claim"):
per claim id and task, the result with its 95% interval and the verdict, as that document states them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

HEADING = "## Every claim"
RESULT = re.compile(r"^(?P<task>.+): result \[95%\]$")
VERDICT = re.compile(r"^(?P<task>.+): verdict$")


@dataclass(frozen=True)
class MiniCell:
    result: str  # e.g. "-1.91 [-5.86, +2.38] points", "-" when not measured
    verdict: str  # reproduced | not reproduced | inconclusive at this power | not testable here | ...


def split_row(line: str) -> list[str]:
    """The cells of a Markdown table row (an escaped ``\\|`` stays inside its cell)."""
    cells = re.split(r"(?<!\\)\|", line.strip().strip("|"))
    return [c.strip().replace("\\|", "|") for c in cells]


def verdict_of(text: str) -> str:
    """The verdict without emphasis or its reason (``not testable here: ...`` → ``not testable here``)."""
    return text.replace("**", "").split(":", 1)[0].strip()


def read_mini_columns(path: Path) -> tuple[list[str], dict[str, dict[str, MiniCell]]]:
    """The tasks of the table's columns, and per claim id, per task, its cell."""
    lines = Path(path).read_text().splitlines()
    if HEADING not in lines:
        raise SystemExit(f"{path}: no '{HEADING}' section; is it the mini study's document?")
    start = lines.index(HEADING) + 1
    while start < len(lines) and not lines[start].startswith("|"):
        start += 1
    head = split_row(lines[start])
    results = {m.group("task"): i for i, h in enumerate(head) if (m := RESULT.match(h))}
    verdicts = {m.group("task"): i for i, h in enumerate(head) if (m := VERDICT.match(h))}
    tasks = [t for t in results if t in verdicts]
    if not tasks or head[0] != "id":
        raise SystemExit(f"{path}: the claims table's header is not the mini study's: {head}")
    out: dict[str, dict[str, MiniCell]] = {}
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        cells = split_row(line)
        out[cells[0]] = {t: MiniCell(cells[results[t]], verdict_of(cells[verdicts[t]])) for t in tasks}
    return tasks, out
