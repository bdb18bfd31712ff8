"""The repository cites only what a user can open: no file outside it, and no dead docs anchor.

Code, configs, tests and docs cite papers, upstream files and the pages of ``docs/`` (e.g.
``docs/algorithms.md#grpo``). This test fails on any citation of the team's private notes (their
folder names) or of a path beside the checkout, and on any ``docs/<page>.md#<anchor>`` link (or,
inside ``docs/``, a relative ``(<page>.md#<anchor>)`` / ``(#<anchor>)`` link) whose page or heading
does not exist. Anchors are GitHub's heading slugs.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
FOLDERS = ("prerl", "tests", "conf", "analysis", "benchmarks", "scripts", "sweeps", "hydra_plugins", "docs")
FILES = ("README.md", "CONTRIBUTING.md", "Makefile", "train.py", "evaluate.py")
SKIP_PARTS = {"__pycache__", "outputs", "multirun", "build", "dist"}  # git-ignored output, never committed

# Assembled from pieces so that this file does not contain the strings it looks for.
FORBIDDEN = ("reference" + "/", "paper" + "-spec", "DESIGN" + ".md", ".." + "/shared")

DOCS_LINK = re.compile(r"docs/([\w.-]+\.md)#([\w-]+)")
RELATIVE_LINK = re.compile(r"\]\((?:([\w.-]+\.md))?#([\w-]+)\)")  # markdown link targets inside docs/
HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
FENCE = re.compile(r"^\s*(```|~~~)")


def scanned_files() -> list[Path]:
    """Every text file of the folders and files above, without git-ignored output (binary files skipped)."""
    paths = [ROOT / name for name in FILES if (ROOT / name).is_file()]
    for folder in FOLDERS:
        for path in sorted((ROOT / folder).rglob("*")):
            parts = set(path.relative_to(ROOT).parts)
            hidden = any(p.startswith(".") for p in path.relative_to(ROOT).parts)
            if not path.is_file() or hidden or parts & SKIP_PARTS or path.suffix == ".pyc":
                continue
            if path.relative_to(ROOT).parts[:2] == ("benchmarks", "results"):
                continue
            paths.append(path)
    return paths


def text_of(path: Path) -> str | None:
    data = path.read_bytes()
    if b"\0" in data:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: markdown links and code marks reduced to their text, lower case,
    every character but letters, digits, ``_``, ``-`` and spaces dropped, spaces turned into ``-``."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)
    text = text.replace("`", "").lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(markdown: str) -> set[str]:
    """The anchors of a page's headings (outside code fences); repeated slugs get -1, -2, ... as GitHub does."""
    seen: Counter[str] = Counter()
    out, fenced = set(), False
    for line in markdown.splitlines():
        if FENCE.match(line):
            fenced = not fenced
            continue
        match = None if fenced else HEADING.match(line)
        if match:
            base = slug(match.group(2))
            out.add(base if seen[base] == 0 else f"{base}-{seen[base]}")
            seen[base] += 1
    return out


def test_slug_follows_github():
    assert slug("Dr.GRPO") == "drgrpo"
    assert slug("REINFORCE++ with a group baseline") == "reinforce-with-a-group-baseline"
    assert slug("PPO with a critic (GAE)") == "ppo-with-a-critic-gae"
    assert slug("Benchmarks and `evaluate.py`") == "benchmarks-and-evaluatepy"
    assert anchors("# A\n## A\n```\n# not a heading\n```\n### B c") == {"a", "a-1", "b-c"}


def test_no_file_cites_a_document_outside_the_repository():
    hits = []
    for path in scanned_files():
        text = text_of(path)
        if text is None:
            continue
        for number, line in enumerate(text.splitlines(), 1):
            hits += [f"{path.relative_to(ROOT)}:{number}: {word!r}" for word in FORBIDDEN if word in line]
    assert not hits, "cite the paper, the upstream file or a page of docs/ instead:\n" + "\n".join(hits)


def test_every_docs_anchor_exists():
    pages: dict[str, set[str] | None] = {}

    def missing(page: str, anchor: str) -> str | None:
        if page not in pages:
            file = DOCS / page
            pages[page] = anchors(file.read_text(encoding="utf-8")) if file.is_file() else None
        if pages[page] is None:
            return f"no page docs/{page}"
        return None if anchor in pages[page] else f"no heading #{anchor} in docs/{page}"

    dead, links = [], 0
    for path in scanned_files():
        text = text_of(path)
        if text is None:
            continue
        found = [(m.group(1), m.group(2)) for m in DOCS_LINK.finditer(text)]
        if path.parent == DOCS and path.suffix == ".md":
            found += [(m.group(1) or path.name, m.group(2)) for m in RELATIVE_LINK.finditer(text)]
        for page, anchor in found:
            links += 1
            why = missing(page, anchor)
            if why:
                dead.append(f"{path.relative_to(ROOT)}: docs/{page}#{anchor}: {why}")
    assert not dead, "dead docs links:\n" + "\n".join(dead)
    assert links > 0  # the pattern matched something: the code cites docs pages by anchor
