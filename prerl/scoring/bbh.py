"""BIG-Bench Hard: exact match of the text after the last "answer is", in the task's answer format.

BBH targets come in three formats, told apart by the target itself:

* an option, ``(A)``…``(R)``: the prediction's option letter must match ("(B)", "B", "B) ..." all count);
* a word answer (``True``/``False``, ``Yes``/``No``, ``valid``/``invalid``, …): case-insensitive equality;
* free text (numbers, sorted words, Dyck closings): equality after collapsing whitespace, case-insensitive.
"""

from __future__ import annotations

import re

_ANSWER = re.compile(r"answer\s+is\s*:?", re.IGNORECASE)
_OPTION = re.compile(r"^\(([A-R])\)$")
_PRED_OPTION = re.compile(r"^\(?([A-R])(?:\)|$|[\s.:,])")


def extract(response: str) -> str | None:
    """What follows the last "answer is" up to the end of its line, trimmed of markup and a final period."""
    matches = list(_ANSWER.finditer(response))
    if not matches:
        return None
    text = response[matches[-1].end() :].split("\n", 1)[0]
    text = text.strip().strip("*_`$\"'").strip()
    if text.endswith("."):
        text = text[:-1].rstrip()
    return text.strip("*_`$\"'").strip()


def _norm(text: str) -> str:
    return " ".join(text.split()).lower()


def matches(prediction: str | None, target: str) -> bool:
    if prediction is None:
        return False
    target = target.strip()
    option = _OPTION.match(target)
    if option:
        found = _PRED_OPTION.match(prediction.strip())
        return found is not None and found.group(1) == option.group(1)
    return _norm(prediction) == _norm(target)


def score(responses: list[str], answers: list[str], metas: list[dict], settings=None) -> list[float]:
    return [float(matches(extract(r), a)) for r, a in zip(responses, answers)]


def reference(answer: str) -> str:
    return f"So the answer is {answer}."
