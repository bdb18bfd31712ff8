"""A study document's prose: a Markdown file of ``analysis/study/templates/`` whose ``${name}`` placeholders
the document's code fills (``string.Template``; ``$$`` writes a dollar sign).

Two rules beyond ``string.Template``: a placeholder and a value must match one to one (a missing value, or
a value the template never uses, is an error, so the prose and the code cannot drift apart silently), and
a placeholder alone on its line whose value is empty is dropped with the blank line after it (a section
with nothing to show leaves no gap).
"""

from __future__ import annotations

import re
import string
from pathlib import Path

TEMPLATES = Path(__file__).parent / "templates"


def placeholders(text: str) -> set[str]:
    """The names of the template's placeholders (``$name`` and ``${name}``)."""
    found = set()
    for match in string.Template.pattern.finditer(text):
        name = match.group("named") or match.group("braced")
        if name:
            found.add(name)
    return found


def fill(name: str, values: dict[str, str]) -> str:
    """The template ``name`` with every placeholder replaced by its value."""
    text = (TEMPLATES / name).read_text()
    wanted, given = placeholders(text), set(values)
    if wanted != given:
        raise KeyError(
            f"template {name}: placeholders without a value {sorted(wanted - given)}, "
            f"values without a placeholder {sorted(given - wanted)}"
        )
    for key, value in values.items():
        if value == "":
            text = re.sub(rf"^\$\{{{key}\}}\n\n", "", text, flags=re.M)
    return string.Template(text).substitute(values)
