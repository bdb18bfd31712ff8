"""Reasoning-behaviour counters: transition and reflection thoughts, and four behaviours by rules.

A *thought* is one sentence of a response (split at ``.``, ``!``, ``?``, ``;`` or a newline). A
response's transition count is the number of its thoughts that contain a transition marker, and
likewise for reflections; a thought with two markers ("wait, check ...") counts once per category.
The four behaviours of SimpleRL-Zoo (Backtracking, Verification, Subgoal Setting, Enumeration) are
counted the same way with their own rule lists; ``analysis.judge`` counts them with an LLM instead.

Every list is a set of case-insensitive regular expressions, kept in a ``Lexicon`` so that a run or
an analysis can replace any of them (``Lexicon.from_file`` reads a YAML/JSON mapping of category →
patterns; categories left out keep their defaults). The defaults below are the usual markers of the
reasoning literature plus the mini corpus's own: "wait" (a change of course after a slip) is a
transition, "check" (re-computing a column) is a reflection, and "wait, check ..." (a repair) is
also backtracking. The paper's full lists are unknown (docs/paper.md#reasoning-behaviours); it names its markers by
example, and ``paper_transitions`` ("wait", "alternatively", "but") and ``paper_reflections`` ("let me
check", "verify") count exactly those words, so a real model's ratio against its base model is in the
paper's own terms (its ×14.89 and ×6.54 after 20 NSR-PreRL steps).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

TRANSITIONS = [
    r"\bwait\b",
    r"\balternatively\b",
    r"\bhowever\b",
    r"\binstead\b",
    r"\bon second thought\b",
    r"\banother (way|approach|method|idea)\b",
    r"\blet'?s try\b",
    r"\blet me try\b",
    r"\bhmm+\b",
    r"\bactually\b",
    r"\bbut then\b",
]
REFLECTIONS = [
    r"\b(re-?|double[- ])?check(s|ed|ing)?\b",
    r"\bverif(y|ies|ied|ying|ication)\b",
    r"\bconfirm(s|ed|ing)?\b",
    r"\bre-?examin(e|ing)\b",
    r"\breconsider\b",
    r"\blet me see\b",
    r"\blooking back\b",
    r"\bmake sure\b",
]
# The markers the paper names (docs/paper.md#reasoning-behaviours), and no others: what its transition and
# reflection ratios count.
PAPER_TRANSITIONS = [r"\bwait\b", r"\balternatively\b", r"\bbut\b"]
PAPER_REFLECTIONS = [r"\blet me check\b", r"\bverify\b"]
BACKTRACKING = [
    r"\bwait\b",
    r"\b(that|this) (is|was|'s) (wrong|incorrect|not right)\b",
    r"\bmistake\b",
    r"\berror\b",
    r"\bwon'?t work\b",
    r"\bdoesn'?t work\b",
    r"\bgo back\b",
    r"\bstart over\b",
    r"\blet me (redo|recompute|recalculate)\b",
    r"\bcorrect(ion|ing)? (it|this|that)\b",
    r"\bi made\b",
]
VERIFICATION = [
    r"\b(re-?|double[- ])?check(s|ed|ing)?\b",
    r"\bverif(y|ies|ied|ying|ication)\b",
    r"\bconfirm(s|ed|ing)?\b",
    r"\bsubstitut(e|ing) (it |this |them )?back\b",
    r"\bplug(ging)? (it |this |them )?back\b",
    r"\bsanity\b",
    r"=\s*\S+\s+ok\b",
    r"\bindeed\b",
]
SUBGOALS = [
    r"\bfirst(ly)?,? (we|i|let)\b",
    r"\bstep \d+\b",
    r"\bnext,? (we|i|let)\b",
    r"\bthen,? (we|i) (need|can|will)\b",
    r"\bto (solve|find|compute) (this|the)\b.*\b(need|first)\b",
    r"\bwe need to\b",
    r"\blet'?s (start|begin|break)\b",
    r"\bbreak (it|this|the problem) (down|into)\b",
    r"\bsub-?(goal|problem|task)s?\b",
]
ENUMERATION = [
    r"\bcase \d+\b",
    r"\bcases?:",
    r"\bfor each\b",
    r"\ball (possible|the) (cases|values|options|possibilities)\b",
    r"\bpossibilit(y|ies)\b",
    r"\beither\b.*\bor\b",
    r"\botherwise\b",
    r"\blist (all|them|the)\b",
    r"\btry (each|every|all)\b",
]

BEHAVIOURS = ("backtracking", "verification", "subgoal_setting", "enumeration")
_SENTENCE_END = re.compile(r"(?<=[.!?;])\s+|\n+")


@dataclass
class Lexicon:
    """Category → regular expressions (matched case-insensitively against each thought)."""

    transitions: list[str] = field(default_factory=lambda: list(TRANSITIONS))
    reflections: list[str] = field(default_factory=lambda: list(REFLECTIONS))
    backtracking: list[str] = field(default_factory=lambda: list(BACKTRACKING))
    verification: list[str] = field(default_factory=lambda: list(VERIFICATION))
    subgoal_setting: list[str] = field(default_factory=lambda: list(SUBGOALS))
    enumeration: list[str] = field(default_factory=lambda: list(ENUMERATION))
    paper_transitions: list[str] = field(default_factory=lambda: list(PAPER_TRANSITIONS))
    paper_reflections: list[str] = field(default_factory=lambda: list(PAPER_REFLECTIONS))

    def __post_init__(self) -> None:
        self._compiled = {}
        for f in fields(self):
            patterns = getattr(self, f.name)
            try:
                self._compiled[f.name] = (
                    re.compile("|".join(f"(?:{p})" for p in patterns), re.IGNORECASE) if patterns else None
                )
            except re.error as e:
                raise ValueError(f"behaviour lexicon: bad pattern in {f.name!r}: {e}") from None

    @classmethod
    def from_file(cls, path: str | Path) -> "Lexicon":
        """A YAML or JSON mapping ``category: [pattern, ...]``; unknown categories are an error."""
        text = Path(path).read_text()
        if str(path).endswith((".yaml", ".yml")):
            from omegaconf import OmegaConf

            data: Any = OmegaConf.to_container(OmegaConf.create(text))
        else:
            data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError(
                f"behaviour lexicon {path}: expected a mapping category: [pattern, ...], got a {type(data).__name__}"
            )
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"behaviour lexicon {path}: unknown categories {sorted(unknown)}; use {sorted(known)}")
        return cls(**{k: [str(p) for p in v] for k, v in data.items()})

    @property
    def categories(self) -> list[str]:
        return [f.name for f in fields(self)]

    def count(self, category: str, text: str) -> int:
        """Number of thoughts of ``text`` that match ``category``."""
        return self.count_in(category, thoughts(text))

    def count_in(self, category: str, sentences: list[str]) -> int:
        """Number of ``sentences`` (a response's ``thoughts``) that match ``category``."""
        pattern = self._compiled[category]
        return 0 if pattern is None else sum(bool(pattern.search(t)) for t in sentences)


DEFAULT_LEXICON = Lexicon()


def thoughts(text: str) -> list[str]:
    """The sentences of a response, stripped, empty ones dropped."""
    return [t.strip() for t in _SENTENCE_END.split(text) if t.strip()]


def count_behaviours(text: str, lexicon: Lexicon = DEFAULT_LEXICON) -> dict[str, int]:
    """Per-category thought counts of one response (split into thoughts once for all categories)."""
    sentences = thoughts(text)
    return {c: lexicon.count_in(c, sentences) for c in lexicon.categories}


def behaviour_metrics(
    texts: list[str], lexicon: Lexicon = DEFAULT_LEXICON, prefix: str = "train/behaviour/"
) -> dict[str, float]:
    """Mean count per response of every category, and the share of responses showing each one."""
    if not texts:
        return {}
    counts = [count_behaviours(t, lexicon) for t in texts]
    out = {}
    for c in lexicon.categories:
        values = [row[c] for row in counts]
        out[f"{prefix}{c}"] = sum(values) / len(values)
        out[f"{prefix}{c}_frac"] = sum(v > 0 for v in values) / len(values)
    return out
