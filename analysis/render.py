"""A ``Table`` as Markdown, LaTeX (booktabs) and CSV; the paper's numbers in a column beside ours."""

from __future__ import annotations

import csv
import io

from .aggregate import Cell
from .tables import Column, Table

DASH = "-"


def cell_text(cell: Cell, digits: int, pm: str = "±") -> str:
    """``41.2 [38.1, 44.0] (5)``: mean, interval, seeds; ``(2/3)`` when one of the row's three runs gave
    no value; no interval: ``41.2 ± 1.2 (2)`` or ``41.2 (1)``; no value: ``-``."""
    if cell.mean is None:
        return DASH
    text = f"{cell.mean:.{digits}f}"
    if cell.lo is not None:
        text += f" [{cell.lo:.{digits}f}, {cell.hi:.{digits}f}]"
    elif cell.std is not None:
        text += f" {pm} {cell.std:.{digits}f}"
    return text + f" ({cell.n}/{cell.of})" if cell.of else text + f" ({cell.n})"


def delta_text(table: Table, row: str, digits: int) -> str:
    """``+4.2 [-1.0, +9.8]`` for a row, ``baseline`` for the baseline row."""
    if row == table.baseline:
        return "baseline"
    d = table.cell(row, table.delta_column).delta
    return DASH if d is None else f"{d.mean:+.{digits}f} [{d.lo:+.{digits}f}, {d.hi:+.{digits}f}]"


PAPER_DIGITS = 2  # as the paper reports


def paper_text(column: Column, row: str) -> str:
    value = column.paper.get(row)
    return DASH if value is None else f"{value:.{PAPER_DIGITS}f}"


def delta_header(table: Table) -> list[str]:
    return [f"Δ {table.delta_column} vs {table.baseline}"] if table.delta_column and table.baseline else []


def header(table: Table) -> list[str]:
    names = [table.row_header]
    for c in table.columns:
        names += [c.name] + ([f"{c.name} (paper)"] if c.paper else [])
    return names + delta_header(table)


def body(table: Table, mark, pm: str = "±") -> list[list[str]]:
    """Rows of strings; ``mark(text)`` decorates the best cell of each ranked column."""
    best = {c.name: table.best(c) for c in table.columns}
    digits = {c.name: c.digits for c in table.columns}
    rows = []
    for row in table.rows:
        out = [row]
        for c in table.columns:
            text = cell_text(table.cell(row, c.name), c.digits, pm)
            out.append(mark(text) if row in best[c.name] else text)
            if c.paper:
                out.append(paper_text(c, row))
        if delta_header(table):
            out.append(delta_text(table, row, digits.get(table.delta_column, 1)))
        rows.append(out)
    return rows


def markdown(table: Table) -> str:
    cols = header(table)
    lines = [f"### {table.title}", "", "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(r) + " |" for r in body(table, lambda t: f"**{t}**")]
    return "\n".join(lines + [""] + [f"- {n}" for n in table.notes]) + "\n"


def latex_escape(text: str) -> str:
    for a, b in (
        ("\\", r"\textbackslash{}"),
        ("_", r"\_"),
        ("%", r"\%"),
        ("&", r"\&"),
        ("#", r"\#"),
        ("→", r"$\rightarrow$"),
        ("±", r"$\pm$"),
        ("Δ", r"$\Delta$"),
    ):
        text = text.replace(a, b)
    return text


def latex(table: Table) -> str:
    cols = header(table)
    lines = [
        r"\begin{table}[t]",
        r"\centering",
        f"\\caption{{{latex_escape(table.title)}}}",
        f"\\label{{tab:{table.name}}}",
        r"\begin{tabular}{l" + "c" * (len(cols) - 1) + "}",
        r"\toprule",
        " & ".join(latex_escape(c) for c in cols) + r" \\",
        r"\midrule",
    ]
    for r in body(table, lambda t: f"@@B{t}@@E"):
        cells = [latex_escape(c).replace("@@B", r"\textbf{").replace("@@E", "}") for c in r]
        lines.append(" & ".join(cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(lines) + "\n" + "".join(f"% {n}\n" for n in table.notes)


CSV_FIELDS = [
    "table",
    "row",
    "column",
    "mean",
    "std",
    "lo",
    "hi",
    "n",
    "runs",
    "delta",
    "delta_lo",
    "delta_hi",
    "best",
    "paper",
]


def _number(value) -> str:
    return "" if value is None else repr(float(value))


def csv_text(table: Table) -> str:
    """One line per cell, full precision; empty fields where there is no value. ``delta*``: the cell
    minus the baseline row's, with its interval."""
    out = io.StringIO()
    writer = csv.DictWriter(out, CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    for c in table.columns:
        best = table.best(c)
        for row in table.rows:
            cell = table.cell(row, c.name)
            d = cell.delta
            writer.writerow(
                {
                    "table": table.name,
                    "row": row,
                    "column": c.name,
                    "mean": _number(cell.mean),
                    "std": _number(cell.std),
                    "lo": _number(cell.lo),
                    "hi": _number(cell.hi),
                    "n": cell.n,
                    "runs": cell.of or cell.n,
                    "delta": _number(d and d.mean),
                    "delta_lo": _number(d and d.lo),
                    "delta_hi": _number(d and d.hi),
                    "best": row in best,
                    "paper": c.paper.get(row, ""),
                }
            )
    return out.getvalue()
