"""A ``Table`` as Markdown, LaTeX (booktabs) and CSV; the paper's numbers in a column beside ours."""

from __future__ import annotations

import csv
import io

from analysis.aggregate import Cell
from analysis.tables import Column, Table

DASH = "-"


def cell_text(cell: Cell, digits: int, pm: str = "±") -> str:
    """``41.23 ± 1.20 (2)``; one run: ``41.23 (1)``; some runs without a value: ``(2/3)``; none: ``-``."""
    if cell.mean is None:
        return DASH
    text = f"{cell.mean:.{digits}f}"
    if cell.std is not None:
        text += f" {pm} {cell.std:.{digits}f}"
    return text + f" ({cell.n}/{cell.of})" if cell.of else text + f" ({cell.n})"


def paper_text(column: Column, row: str) -> str:
    value = column.paper.get(row)
    return DASH if value is None else f"{value:.{column.digits}f}"


def header(table: Table) -> list[str]:
    names = [table.row_header]
    for c in table.columns:
        names += [c.name] + ([f"{c.name} (paper)"] if c.paper else [])
    return names


def body(table: Table, mark, pm: str = "±") -> list[list[str]]:
    """Rows of strings; ``mark(text)`` decorates the best cell of each ranked column."""
    best = {c.name: table.best(c) for c in table.columns}
    rows = []
    for row in table.rows:
        out = [row]
        for c in table.columns:
            text = cell_text(table.cell(row, c.name), c.digits, pm)
            out.append(mark(text) if row in best[c.name] else text)
            if c.paper:
                out.append(paper_text(c, row))
        rows.append(out)
    return rows


def markdown(table: Table) -> str:
    cols = header(table)
    lines = [f"### {table.title}", "", "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(r) + " |" for r in body(table, lambda t: f"**{t}**")]
    return "\n".join(lines + [""] + [f"- {n}" for n in table.notes]) + "\n"


def latex_escape(text: str) -> str:
    for a, b in (("\\", r"\textbackslash{}"), ("_", r"\_"), ("%", r"\%"), ("&", r"\&"), ("#", r"\#"),
                 ("→", r"$\rightarrow$"), ("±", r"$\pm$")):
        text = text.replace(a, b)
    return text


def latex(table: Table) -> str:
    cols = header(table)
    lines = [r"\begin{table}[t]", r"\centering", f"\\caption{{{latex_escape(table.title)}}}",
             f"\\label{{tab:{table.name}}}", r"\begin{tabular}{l" + "c" * (len(cols) - 1) + "}", r"\toprule",
             " & ".join(latex_escape(c) for c in cols) + r" \\", r"\midrule"]
    for r in body(table, lambda t: f"@@B{t}@@E"):
        cells = [latex_escape(c).replace("@@B", r"\textbf{").replace("@@E", "}") for c in r]
        lines.append(" & ".join(cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(lines) + "\n" + "".join(f"% {n}\n" for n in table.notes)


CSV_FIELDS = ["table", "row", "column", "mean", "std", "n", "runs", "best", "paper"]


def csv_text(table: Table) -> str:
    """One line per cell, full precision; empty fields where there is no value."""
    out = io.StringIO()
    writer = csv.DictWriter(out, CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    for c in table.columns:
        best = table.best(c)
        for row in table.rows:
            cell = table.cell(row, c.name)
            writer.writerow({"table": table.name, "row": row, "column": c.name,
                             "mean": "" if cell.mean is None else repr(cell.mean),
                             "std": "" if cell.std is None else repr(cell.std), "n": cell.n,
                             "runs": cell.of or cell.n, "best": row in best, "paper": c.paper.get(row, "")})
    return out.getvalue()
