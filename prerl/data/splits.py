"""Prompts as ``datasets.Dataset`` splits: ``train`` plus named eval sets (``math``: ``train`` only).

Every row has ``messages`` (system + user chat turns) and ``answer`` (the gold answer as a string);
prompts are rendered with the tokenizer's own chat template at load time (``render``). The synthetic
tasks' splits (``mini``, ``word_problems``) are generated from a seed; eval problems never appear in
``train``, and each row names its scorer kind.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Hashable

from prerl.config.schema import DataConfig
from prerl.data import mini_task as task
from prerl.data import word_problems

if TYPE_CHECKING:  # `datasets` is slow to import: the config check reads the names before it is needed
    from datasets import Dataset, DatasetDict


@dataclass(frozen=True)
class SyntheticTask:
    """A task whose problems are drawn from a seed: how to draw one, what makes two the same, its chat
    turns and its scorer kind (``prerl.scoring``)."""

    difficulty: Callable[..., Any]  # (min_operands, max_operands, min_digits, max_digits) -> Difficulty
    sample: Callable[[random.Random, Any], Any]
    key: Callable[[Any], Hashable]
    messages: Callable[[Any, DataConfig], list[dict]]
    scorer: str


TASKS = {
    "mini": SyntheticTask(
        task.Difficulty, task.sample_problem, lambda p: p.operands, lambda p, cfg: task.messages(p), "math"
    ),
    "word_problems": SyntheticTask(
        word_problems.Difficulty,
        word_problems.sample_problem,
        lambda p: p.key,
        lambda p, cfg: word_problems.messages(p, cfg.system_prompt),
        "number",
    ),
}


def _problems(rng: random.Random, kind: SyntheticTask, difficulty, count: int, exclude: set) -> list:
    out: list = []
    seen, attempts = set(exclude), 0
    while len(out) < count:
        attempts += 1
        if attempts > 100 * count + 1000:
            raise ValueError(f"data: cannot draw {count} distinct problems of {difficulty}; lower the count")
        problem = kind.sample(rng, difficulty)
        if kind.key(problem) not in seen:
            seen.add(kind.key(problem))
            out.append(problem)
    return out


def _to_dataset(problems: list, kind: SyntheticTask, cfg: DataConfig) -> Dataset:
    from datasets import Dataset

    return Dataset.from_dict(
        {
            "messages": [kind.messages(p, cfg) for p in problems],
            "answer": [str(p.answer) for p in problems],
            "scorer": [kind.scorer] * len(problems),
        }
    )


def synthetic_splits(cfg: DataConfig) -> DatasetDict:
    """Train, in-distribution test and harder out-of-distribution test of a seeded task: the test sets
    first, then train without any of their problems."""
    from datasets import DatasetDict

    kind = TASKS[cfg.name]
    rng = random.Random(cfg.seed)
    in_dist = kind.difficulty(cfg.min_operands, cfg.max_operands, cfg.min_digits, cfg.max_digits)
    ood = kind.difficulty(cfg.ood_min_operands, cfg.ood_max_operands, cfg.ood_min_digits, cfg.ood_max_digits)
    test = _problems(rng, kind, in_dist, cfg.test_problems, set())
    ood_test = _problems(rng, kind, ood, cfg.ood_problems, set())
    train = _problems(rng, kind, in_dist, cfg.train_problems, {kind.key(p) for p in test + ood_test})
    splits = {"train": train, "test": test, "ood": ood_test}
    return DatasetDict({name: _to_dataset(problems, kind, cfg) for name, problems in splits.items()})


def math_splits(cfg: DataConfig) -> DatasetDict:
    """MATH train (7,500 problems; rows without an answer dropped) from ``data.path`` or the Hub.
    Its eval sets are benchmarks, named in ``eval.sets``."""
    from datasets import DatasetDict

    from prerl.data.eval_sets import load_benchmark

    return DatasetDict({"train": load_benchmark("math_train", cfg.path)})


DATASETS = {"mini": synthetic_splits, "word_problems": synthetic_splits, "math": math_splits}
SPLIT_NAMES = {
    "mini": ("train", "test", "ood"),
    "word_problems": ("train", "test", "ood"),
    "math": ("train",),
}  # what each loader returns (checked by a test)


def load_splits(cfg: DataConfig) -> DatasetDict:
    if cfg.name not in DATASETS:
        raise ValueError(f"data.name={cfg.name!r}: choose one of {sorted(DATASETS)}")
    return DATASETS[cfg.name](cfg)


def render(dataset: Dataset, tokenizer, chat_template_kwargs: dict | None = None) -> Dataset:
    """Add ``prompt_ids``: the chat-templated prompt, ending with the assistant turn's opening."""
    kwargs = dict(chat_template_kwargs or {})

    def encode(row):
        text = tokenizer.apply_chat_template(row["messages"], add_generation_prompt=True, tokenize=False, **kwargs)
        return {"prompt_ids": tokenizer(text, add_special_tokens=False)["input_ids"]}

    return dataset.map(encode, desc="rendering prompts", load_from_cache_file=False)
