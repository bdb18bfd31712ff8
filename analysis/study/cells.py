"""A study's runs by task and cell: a run's cell is named from its config (``cell_label``), its task from
its model (``task_of``), and ``Study`` holds the runs with what the claims need to know of the design
(DSRL's warm-up S, the updates T) and names the cells the claims compare.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from ..aggregate import Group, group_runs
from ..runs import RunRecord
from ..tables import TableOptions

GRPO = "GRPO"
TASKS = ("mini", "mini_styles", "micro")  # model.mini.name, in the documents' order; micro only in smoke presets
OWN = ("warmup_steps", "objective.name", "objective.advantage")  # the keys that make a cell a cell
WHOLE = {  # an objective's name in a cell's label
    "psr_prerl": "PSR-PreRL",
    "nsr_prerl": "NSR-PreRL",
    "prerl": "PreRL",
    "nsr_rl": "NSR-RL",
    "psr_rl": "PSR-RL",
    "rl": "RL",
    "w_reinforce": "W-REINFORCE",
}
ALONE = ("PSR-PreRL alone", "NSR-PreRL alone", "PreRL alone")  # each objective for the whole run


def cell_label(params: dict[str, str]) -> str:
    """A run's cell: ``GRPO``; ``NSR-PreRL(20)→GRPO`` (DSRL), ``NSR-RL(20)→GRPO``,
    ``NSR-PreRL-unit(20)→GRPO``; ``PSR-PreRL alone`` (the objective for the whole run)."""
    warmup, total = int(params.get("warmup_steps", 0)), int(params.get("total_steps", 0))
    if warmup == 0:
        return GRPO if params.get("algorithm.name") == "grpo" else params.get("algorithm.name", "?")
    objective = params.get("objective.name", "?")
    unit = str(params.get("objective.advantage", "")).rsplit(".", 1)[-1] == "unit"  # logged as ObjectiveAdvantage.unit
    name = WHOLE.get(objective, objective) + ("-unit" if unit else "")
    return f"{name} alone" if warmup >= total else f"{name}({warmup})→{params.get('algorithm.name', '?').upper()}"


def task_of(run: RunRecord) -> str:
    """The run's task: its mini model's name, its model path, or a GGUF model's name (``SmolLM2-135M-Instruct``)."""
    given = {k: v for k, v in run.params.items() if v != "None"}  # MLflow holds a null as "None"
    gguf = given.get("model.gguf.model")
    return given.get("model.mini.name") or given.get("model.path") or (gguf.rsplit("/", 1)[-1] if gguf else "?")


def infer_dsrl_steps(runs: list[RunRecord]) -> Optional[int]:
    """DSRL's S: the warm-up length of the NSR-RL control, which runs at DSRL's S."""
    found = {int(r.params["warmup_steps"]) for r in runs if cell_label(r.params).startswith("NSR-RL(")}
    return found.pop() if len(found) == 1 else None


@dataclass
class Study:
    """The study's runs grouped by task and cell, and what the claims need to know about its design."""

    runs: list[RunRecord]
    dsrl_steps: int
    total_steps: int
    opts: TableOptions
    alignment: dict[str, dict] = field(default_factory=dict)  # task -> {"json": ..., "tokens": {...}, "png": ...}
    by_task: dict[str, dict[str, Group]] = field(default_factory=dict, repr=False)  # filled by groups()

    def tasks(self) -> list[str]:
        found = {task_of(r) for r in self.runs} | set(self.alignment)
        return [t for t in TASKS if t in found] + sorted(found - set(TASKS))

    def task_runs(self, task: str, labels: Optional[list[str]] = None) -> list[RunRecord]:
        return [r for r in self.runs if task_of(r) == task and (labels is None or cell_label(r.params) in labels)]

    def groups(self, task: str) -> dict[str, Group]:
        if task not in self.by_task:
            self.by_task[task] = {g.label: g for g in group_runs(self.task_runs(task), cell_label)}
        return self.by_task[task]

    # --- the cells the claims and the parts compare ---

    @property
    def dsrl(self) -> str:
        """DSRL: NSR-PreRL for S updates, then GRPO."""
        return f"NSR-PreRL({self.dsrl_steps})→GRPO"

    @property
    def nsr_rl_warmup(self) -> str:
        """The post-train-space control: NSR-RL for S updates, then GRPO."""
        return f"NSR-RL({self.dsrl_steps})→GRPO"

    @property
    def unit_weighting(self) -> str:
        """DSRL with every wrong answer weighted −1 in the warm-up."""
        return f"NSR-PreRL-unit({self.dsrl_steps})→GRPO"

    @property
    def warmups(self) -> list[int]:
        """The NSR-PreRL warm-up lengths S (0 < S < T) the study ran."""
        return sorted(
            {int(r.params["warmup_steps"]) for r in self.runs if cell_label(r.params).startswith("NSR-PreRL(")}
        )

    @property
    def shorter_warmup(self) -> str:
        """The longest NSR-PreRL warm-up shorter than DSRL's ("none" when the study ran none)."""
        shorter = [x for x in self.warmups if x < self.dsrl_steps]
        return f"NSR-PreRL({max(shorter)})→GRPO" if shorter else "none"

    @property
    def longest_warmup(self) -> str:
        """The longest NSR-PreRL warm-up, when it is longer than DSRL's ("none" otherwise)."""
        return (
            f"NSR-PreRL({max(self.warmups)})→GRPO" if self.warmups and max(self.warmups) > self.dsrl_steps else "none"
        )

    @property
    def reported(self) -> list[str]:
        """The cells of the behaviour and solved-prompt tables and figures."""
        return [GRPO, self.dsrl, self.nsr_rl_warmup, *ALONE]
