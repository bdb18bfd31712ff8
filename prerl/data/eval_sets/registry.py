"""The benchmarks: Hub ids, splits, field mappings, scorer kinds and local file names.

A benchmark may be a slice of another's rows (``keep``; MATH-500's Level 1 problems), and may ship with
prerl (``shipped``, a file in ``prerl/data/eval_sets/shipped/`` with its source and licence beside it): it
then loads without the Hub or a data folder.

Each ``convert`` maps one raw row to the record fields. It reads the Hub's own field names and also
the unified ``problem``/``answer`` fields of offline copies (JSONL rows that keep every original field
beside ``id``, ``problem`` and ``answer``; ``tests/fixtures/benchmarks`` holds a few), so one mapping
serves both. A missing field raises ``KeyError``; the loader turns it into an error naming the file
and line.
"""

from __future__ import annotations

import random
import re
import string
from dataclasses import dataclass
from typing import Any, Callable

from prerl.data.eval_sets import prompts

GPQA_PASSWORD = b"deserted-untie-orchid"  # the GPQA authors' public password for their own zip


def pick(row: dict, *keys: str) -> Any:
    """The first of ``keys`` present (and not None) in ``row``."""
    for key in keys:
        if row.get(key) is not None:
            return row[key]
    raise KeyError(" or ".join(repr(k) for k in keys))


def answer_text(value: Any) -> str:
    """Gold answers as strings: 27.0 -> "27", "025" -> "25", "$x$" -> "x"."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = str(value).strip()
    if re.fullmatch(r"0+\d+", text):
        text = text.lstrip("0")
    if len(text) > 1 and text.startswith("$") and text.endswith("$"):
        text = text.strip("$").strip()
    return text


@dataclass(frozen=True)
class Problem:
    """What a converter extracts from a row; ``reference`` is a worked solution when the row has one."""

    id: str
    messages: list[dict]
    answer: str
    metadata: dict
    reference: str | None = None


def _solution(row: dict) -> str | None:
    solution = row.get("solution")
    if isinstance(solution, list):
        solution = solution[0] if solution else None
    return solution if isinstance(solution, str) and solution.strip() else None


def math_problem(row: dict) -> Problem:
    """MATH, MATH500, AIME, AMC, Minerva, OlympiadBench."""
    if row.get("answer") is not None:
        answer = answer_text(row["answer"])
    elif row.get("final_answer") is not None:  # OlympiadBench: a list with one string
        final = row["final_answer"]
        answer = answer_text(final[0] if isinstance(final, list) and final else final)
    else:  # MATH train on the Hub: the answer is the last box of the solution
        from prerl.scoring.rewards import last_boxed  # math-verify loads with the first MATH row, not with the names

        answer = last_boxed(pick(row, "solution")) or ""
    category = row.get("subject") or row.get("type") or row.get("subfield") or row.get("_config") or ""
    level = row.get("level")
    return Problem(
        id=str(pick(row, "id", "unique_id", "idx", "_index")),
        messages=prompts.math(str(pick(row, "problem", "question", "Question"))),
        answer=answer,
        metadata={"category": str(category), "level": "" if level is None else str(level)},
        reference=_solution(row) if "\\boxed" in (_solution(row) or "") else None,
    )


def gpqa_problem(row: dict) -> Problem:
    """The offline copy has shuffled ``options`` and a letter; the Hub has the correct and 3 incorrect answers."""
    question = str(pick(row, "problem", "ori_question", "Question")).strip()
    if row.get("options") is not None:
        options = [str(o) for o in row["options"]]
        answer = answer_text(pick(row, "answer"))
    else:
        correct = str(pick(row, "Correct Answer")).strip()
        options = [correct] + [str(pick(row, f"Incorrect Answer {i}")).strip() for i in (1, 2, 3)]
        random.Random(question).shuffle(options)  # a fixed order per question, like the copy's
        answer = string.ascii_uppercase[options.index(correct)]
    return Problem(
        id=str(pick(row, "id", "Record ID", "_index")),
        messages=prompts.multiple_choice(question, options),
        answer=answer,
        metadata={"options": options, "category": str(row.get("High-level domain") or "")},
    )


def mmlu_pro_problem(row: dict) -> Problem:
    options = [str(o) for o in pick(row, "options")]
    answer = row.get("answer")
    if answer is None and row.get("answer_index") is not None:
        answer = string.ascii_uppercase[int(row["answer_index"])]
    return Problem(
        id=str(pick(row, "question_id", "id", "_index")),
        messages=prompts.multiple_choice(str(pick(row, "question", "problem")), options),
        answer="" if answer is None else answer_text(answer),
        metadata={"options": options, "category": str(row.get("category") or "")},
    )


def bbh_problem(row: dict) -> Problem:
    task = str(pick(row, "task", "_config"))
    index = row.get("_index")
    return Problem(
        id=str(row.get("id") or f"{task}/{index}"),
        messages=prompts.bbh(str(pick(row, "input", "problem"))),
        answer=str(pick(row, "target", "answer")).strip(),
        metadata={"task": task},
    )


def humaneval_problem(row: dict) -> Problem:
    prompt = str(pick(row, "prompt", "problem"))
    solution = str(pick(row, "canonical_solution", "answer"))
    return Problem(
        id=str(pick(row, "task_id", "id")),
        messages=prompts.code(prompt),
        answer=solution,
        metadata={"prompt": prompt, "test": str(pick(row, "test")), "entry_point": str(pick(row, "entry_point"))},
        reference=solution,
    )


@dataclass(frozen=True)
class Benchmark:
    name: str
    hub_id: str
    split: str
    scorer: str  # a kind in prerl.scoring.SCORERS
    convert: Callable[[dict], Problem]
    local_file: str  # where a data_dir (eval.data_dir) holds the offline copy, e.g. math500/test.jsonl
    configs: tuple[str | None, ...] = (None,)
    password: bytes | None = None
    keep: Callable[[dict], bool] | None = None  # a slice: the raw rows it keeps (None: all)
    shipped: str | None = None  # a copy in prerl/data/eval_sets/shipped/, read when no path is given


MATH_SUBJECTS = (
    "algebra",
    "counting_and_probability",
    "geometry",
    "intermediate_algebra",
    "number_theory",
    "prealgebra",
    "precalculus",
)
BBH_TASKS = (
    "boolean_expressions",
    "causal_judgement",
    "date_understanding",
    "disambiguation_qa",
    "dyck_languages",
    "formal_fallacies",
    "geometric_shapes",
    "hyperbaton",
    "logical_deduction_five_objects",
    "logical_deduction_seven_objects",
    "logical_deduction_three_objects",
    "movie_recommendation",
    "multistep_arithmetic_two",
    "navigate",
    "object_counting",
    "penguins_in_a_table",
    "reasoning_about_colored_objects",
    "ruin_names",
    "salient_translation_error_detection",
    "snarks",
    "sports_understanding",
    "temporal_sequences",
    "tracking_shuffled_objects_five_objects",
    "tracking_shuffled_objects_seven_objects",
    "tracking_shuffled_objects_three_objects",
    "web_of_lies",
    "word_sorting",
)

BENCHMARKS: dict[str, Benchmark] = {
    b.name: b
    for b in [
        Benchmark(
            "math_train",
            "EleutherAI/hendrycks_math",
            "train",
            "math",
            math_problem,
            "math_train/train.jsonl",
            configs=MATH_SUBJECTS,
        ),
        Benchmark("math500", "HuggingFaceH4/MATH-500", "test", "math", math_problem, "math500/test.jsonl"),
        Benchmark(
            "math500_level1",
            "HuggingFaceH4/MATH-500",
            "test",
            "math",
            math_problem,
            "math500/test.jsonl",
            keep=lambda row: str(row.get("level")) == "1",
            shipped="math500_level1.jsonl",
        ),
        Benchmark("amc23", "math-ai/amc23", "test", "math", math_problem, "amc23/test.jsonl"),
        Benchmark("aime24", "HuggingFaceH4/aime_2024", "train", "math", math_problem, "aime24/test.jsonl"),
        Benchmark("aime25", "math-ai/aime25", "test", "math", math_problem, "aime25/test.jsonl"),
        Benchmark("minerva", "math-ai/minervamath", "test", "math", math_problem, "minerva_math/test.jsonl"),
        Benchmark("olympiadbench", "math-ai/olympiadbench", "test", "math", math_problem, "olympiadbench/test.jsonl"),
        Benchmark(
            "gpqa_diamond",
            "Idavidrein/gpqa",
            "train",
            "multiple_choice",
            gpqa_problem,
            "gpqa_diamond/test.jsonl.zip",
            configs=("gpqa_diamond",),
            password=GPQA_PASSWORD,
        ),
        Benchmark("mmlu_pro", "TIGER-Lab/MMLU-Pro", "test", "multiple_choice", mmlu_pro_problem, "mmlu_pro/test.jsonl"),
        Benchmark("bbh", "lukaemon/bbh", "test", "bbh", bbh_problem, "bbh/test.jsonl", configs=BBH_TASKS),
        Benchmark("humaneval", "openai/openai_humaneval", "test", "code", humaneval_problem, "humaneval/test.jsonl"),
    ]
}

MATH6 = ("math500", "amc23", "aime24", "aime25", "minerva", "olympiadbench")
OOD = ("gpqa_diamond", "mmlu_pro", "bbh", "humaneval")
