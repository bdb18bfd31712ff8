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

ROOT = Path(__file__).resolve().parents[2]
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


# A markdown link or image target: [text](target) or ![alt](target), up to a space (a title) or ")".
MARKDOWN_LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
INLINE_CODE = re.compile(r"`[^`]*`")
EXTERNAL = ("http://", "https://", "mailto:")


def markdown_pages() -> list[Path]:
    """README.md, CONTRIBUTING.md and every page under docs/ (result pages in its folders included)."""
    return [ROOT / "README.md", ROOT / "CONTRIBUTING.md", *sorted(DOCS.rglob("*.md"))]


def relative_links(markdown: str) -> list[str]:
    """The targets of a page's links and images that point into the repository (outside code)."""
    out, fenced = [], False
    for line in markdown.splitlines():
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            out += [t for t in MARKDOWN_LINK.findall(INLINE_CODE.sub("", line)) if not t.startswith(EXTERNAL)]
    return out


def dead_link(page: Path, target: str) -> str | None:
    """Why ``target``, linked from ``page``, does not resolve: no such file, or no such heading."""
    path, _, anchor = target.partition("#")
    file = (page.parent / path).resolve() if path else page
    if not file.exists():
        return f"no file {path}"
    if anchor and file.suffix == ".md" and anchor not in anchors(file.read_text(encoding="utf-8")):
        return f"no heading #{anchor} in {path or page.name}"
    return None


def test_relative_links_finds_links_and_skips_code():
    text = "[a](x.md#b) ![i](assets/p.png) `[c](no.md)` [w](https://x.org)\n```\n[d](no.md)\n```\n"
    assert relative_links(text) == ["x.md#b", "assets/p.png"]


def test_every_relative_link_of_the_markdown_pages_resolves():
    dead, links = [], 0
    for page in markdown_pages():
        for target in relative_links(page.read_text(encoding="utf-8")):
            links += 1
            why = dead_link(page, target)
            if why:
                dead.append(f"{page.relative_to(ROOT)}: ({target}): {why}")
    assert not dead, "dead links:\n" + "\n".join(dead)
    assert links > 0  # the pattern matched something: the pages link each other


def test_a_dead_link_is_reported(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("# Title\n\n## Part two\n")
    (tmp_path / "assets").mkdir()
    (tmp_path / "assets" / "p.png").write_bytes(b"")
    assert [dead_link(page, t) for t in ("page.md#part-two", "#title", "assets/p.png")] == [None, None, None]
    assert dead_link(page, "page.md#part") == "no heading #part in page.md"
    assert dead_link(page, "#nope") == "no heading #nope in page.md"
    assert dead_link(page, "missing.md") == "no file missing.md"
    assert dead_link(page, "assets/q.png") == "no file assets/q.png"


NAV_PAGE = re.compile(r"^\s*-\s+(?:[^:\n]+:\s+)?([\w./-]+\.md)\s*$", re.MULTILINE)


def top_level_pages() -> set[str]:
    return {p.name for p in DOCS.glob("*.md")}


def test_every_docs_page_is_in_the_site_nav_and_linked_from_the_readme():
    nav = set(NAV_PAGE.findall((ROOT / "mkdocs.yml").read_text(encoding="utf-8")))
    assert nav == top_level_pages(), "mkdocs.yml's nav and the pages of docs/ differ"
    readme = {t.partition("#")[0] for t in relative_links((ROOT / "README.md").read_text(encoding="utf-8"))}
    unlinked = {p for p in top_level_pages() - {"index.md"} if f"docs/{p}" not in readme}
    assert not unlinked, f"README.md links no page {sorted(unlinked)}"


def fenced_block(markdown: str, first_line: str) -> str:
    """The code block whose first line is ``first_line``."""
    start = markdown.index(first_line)
    return markdown[start : markdown.index("```", start)]


def table_after(markdown: str, heading_line: str) -> str:
    """The Markdown table that follows ``heading_line``."""
    rest = markdown[markdown.index(heading_line) :].split("\n\n")[1]
    assert rest.startswith("|"), heading_line
    return rest


def test_the_readme_and_the_docs_show_the_same_commands_and_groups():
    """The README repeats what the docs site opens with; the copies must not drift apart."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    commands = fenced_block(readme, "make demo   #")
    for page in ("index.md", "getting-started.md"):
        assert fenced_block((DOCS / page).read_text(encoding="utf-8"), "make demo   #") == commands, page
    groups = "Groups in `conf/` (schema and validation in `prerl/config/schema.py`):"
    config_page = (DOCS / "configuration.md").read_text(encoding="utf-8")
    readme_table = table_after(readme, groups).replace("](docs/", "](")
    assert readme_table == table_after(config_page, groups)
    step = "## What a step does\n"
    index = (DOCS / "index.md").read_text(encoding="utf-8")
    assert section(readme, step).replace("](docs/", "](") == section(index, step)


def section(markdown: str, heading_line: str) -> str:
    """From ``heading_line`` to the next heading of its level."""
    start = markdown.index(heading_line)
    level = heading_line.split(" ")[0] + " "
    end = markdown.find("\n" + level, start + len(heading_line))
    return markdown[start : end if end >= 0 else len(markdown)]
