"""Prompts as ``datasets.Dataset`` splits: ``train`` plus named eval sets (``math``: ``train`` only).

Every row has ``messages`` (system + user chat turns) and ``answer`` (the gold answer as a string);
prompts are rendered with the tokenizer's own chat template at load time (``render``). The mini
task's splits are generated from a seed; eval problems never appear in ``train``.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

from prerl.config import DataConfig
from prerl.mini import task

if TYPE_CHECKING:  # `datasets` takes ~1 s to import: the names (DATASETS) are read before it is needed
    from datasets import Dataset, DatasetDict


def _problems(rng: random.Random, difficulty: task.Difficulty, count: int, exclude: set) -> list[task.Problem]:
    out: list[task.Problem]
    out, seen, attempts = [], set(exclude), 0
    while len(out) < count:
        attempts += 1
        if attempts > 100 * count + 1000:
            raise ValueError(f"data: cannot draw {count} distinct problems of {difficulty}; lower the count")
        problem = task.sample_problem(rng, difficulty)
        if problem.operands not in seen:
            seen.add(problem.operands)
            out.append(problem)
    return out


def _to_dataset(problems: list[task.Problem]) -> Dataset:
    from datasets import Dataset

    return Dataset.from_dict(
        {
            "messages": [task.messages(p) for p in problems],
            "answer": [str(p.answer) for p in problems],
        }
    )


def mini_splits(cfg: DataConfig) -> DatasetDict:
    from datasets import DatasetDict

    rng = random.Random(cfg.seed)
    in_dist = task.Difficulty(cfg.min_operands, cfg.max_operands, cfg.min_digits, cfg.max_digits)
    ood = task.Difficulty(cfg.ood_min_operands, cfg.ood_max_operands, cfg.ood_min_digits, cfg.ood_max_digits)
    test = _problems(rng, in_dist, cfg.test_problems, set())
    ood_test = _problems(rng, ood, cfg.ood_problems, set())
    train = _problems(rng, in_dist, cfg.train_problems, {p.operands for p in test + ood_test})
    return DatasetDict({"train": _to_dataset(train), "test": _to_dataset(test), "ood": _to_dataset(ood_test)})


def math_splits(cfg: DataConfig) -> DatasetDict:
    """MATH train (7,500 problems; rows without an answer dropped) from ``data.path`` or the Hub.
    Its eval sets are benchmarks, named in ``eval.sets``."""
    from datasets import DatasetDict

    from prerl.benchmarks import load_benchmark

    return DatasetDict({"train": load_benchmark("math_train", cfg.path)})


DATASETS = {"mini": mini_splits, "math": math_splits}
SPLIT_NAMES = {"mini": ("train", "test", "ood"), "math": ("train",)}  # what each loader returns (checked by a test)


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
